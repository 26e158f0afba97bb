"""The web UI (the upstream SPA, `interloper-app`) served same-origin with /api.

Any non-/api path is a file of the build if one exists, else `index.html` (the SPA's router
takes over). Hashed assets under `/_nuxt/` are cached for a year; HTML is never cached, so a
new version is picked up on the next load. The files that name Iconify's public API are served
pointing at our own icon endpoint instead (icons.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from .icons import local_icon_assets

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


def find_static_dir() -> Path | None:
    try:
        import interloper_app
    except ImportError:
        return None
    try:
        return Path(interloper_app.static_dir())
    except FileNotFoundError:
        return None


class SpaFiles:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.index = self.root / "index.html"
        self.overrides = local_icon_assets(self.root)  # served instead of the file on disk

    def resolve(self, path: str) -> Path:
        """The file for a URL path; anything missing or outside the build is index.html."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root):
            return self.index
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else self.index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": "GET, HEAD"})
        else:
            path: str = scope["path"]
            file = self.resolve(path)
            cache = IMMUTABLE if path.startswith("/_nuxt/") and file != self.index else NO_CACHE
            if file in self.overrides:
                response = Response(
                    self.overrides[file], media_type="text/javascript", headers={"Cache-Control": cache}
                )
            else:
                response = FileResponse(file, headers={"Cache-Control": cache})
        await response(scope, receive, send)
