"""The web UI's icons from our own origin (self-hosted and air-gapped installs show them too).

The UI build (interloper-app, unchanged on disk) asks Iconify's public API for icon data at run
time: `<endpoint>/<set>.json?icons=a,b,c`, the endpoint baked into its JavaScript. When the
gateway serves the UI it rewrites that endpoint, in memory, to `/api/iconify`, and answers
there in the same format from Iconify JSON icon sets:

* `iconsets/` beside this module: the icons the UI and the catalog name, a subset of the npm
  packages `@iconify-json/<set>` made by `scripts/vendor-icons.py` (committed: the build needs
  no npm);
* `INTERLOPER_ICONS_DIR`, when set: whole Iconify JSON sets (`<set>.json`, e.g. from the npm
  package `@iconify/json`), which take precedence, for catalogs with other icons."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response

log = logging.getLogger(__name__)

ICONS_PATH = "/api/iconify"
VENDORED_DIR = Path(__file__).parent / "iconsets"
# The public API hosts the Iconify client knows (its default list and @nuxt/icon's endpoint).
PUBLIC_APIS = ("https://api.iconify.design", "https://api.simplesvg.com", "https://api.unisvg.com")
SET_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_ICONS = 500  # per request; the client splits its queries far below this
CACHE = "public, max-age=86400"
_SET_KEYS = ("width", "height", "left", "top")


def local_icon_assets(static_dir: Path) -> dict[Path, bytes]:
    """The UI's JavaScript files that name a public icon API, with our endpoint instead
    (quoted string literals only, so nothing else in the code changes)."""
    rewritten: dict[Path, bytes] = {}
    for path in sorted((static_dir / "_nuxt").glob("*.js")):
        code = path.read_bytes()
        changed = code
        for host in PUBLIC_APIS:
            changed = changed.replace(f'"{host}"'.encode(), f'"{ICONS_PATH}"'.encode())
        if changed != code:
            rewritten[path.resolve()] = changed
    if not rewritten:
        log.warning("no icon API endpoint found in the web UI: its icons may come from the internet")
    return rewritten


class IconSets:
    """Iconify JSON sets by prefix, read on first use: `extra_dir` first, then the vendored ones."""

    def __init__(self, extra_dir: Path | None = None) -> None:
        self.dirs = [d for d in (extra_dir, VENDORED_DIR) if d is not None]
        self._sets: dict[str, dict[str, Any] | None] = {}

    def get(self, prefix: str) -> dict[str, Any] | None:
        if prefix not in self._sets:
            self._sets[prefix] = self._load(prefix)
        return self._sets[prefix]

    def _load(self, prefix: str) -> dict[str, Any] | None:
        for directory in self.dirs:
            path = directory / f"{prefix}.json"
            if path.is_file():
                data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                return data
        return None

    def answer(self, prefix: str, names: list[str]) -> dict[str, Any] | None:
        """The Iconify API's answer for these icons of a set (None: no such set)."""
        data = self.get(prefix)
        if data is None:
            return None
        icons, aliases = data.get("icons", {}), data.get("aliases", {})
        found: dict[str, Any] = {}
        found_aliases: dict[str, Any] = {}
        missing: list[str] = []
        for requested in names:
            name = requested
            while name in aliases and name not in found_aliases:  # an alias names its parent
                found_aliases[name] = aliases[name]
                name = aliases[name].get("parent", "")
            if name in icons:
                found[name] = icons[name]
            elif requested not in found_aliases:
                missing.append(requested)
        reply: dict[str, Any] = {"prefix": prefix, "icons": found}
        reply.update({key: data[key] for key in _SET_KEYS if key in data})
        if found_aliases:
            reply["aliases"] = found_aliases
        if missing:
            reply["not_found"] = missing
        return reply


def install_icons(app: FastAPI, sets: IconSets) -> None:
    @app.get(ICONS_PATH + "/{name}", include_in_schema=False)
    async def icon_data(name: str, icons: str = Query("", max_length=20_000)) -> Response:
        prefix = name.removesuffix(".json")
        names = [n for n in icons.split(",") if n]
        if not name.endswith(".json") or not SET_NAME.fullmatch(prefix):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if len(names) > MAX_ICONS or not all(SET_NAME.fullmatch(n) for n in names):
            return JSONResponse({"detail": f"icons must be at most {MAX_ICONS} icon names"}, status_code=400)
        reply = sets.answer(prefix, names)
        if reply is None:  # 404 tells the Iconify client not to ask elsewhere
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return JSONResponse(reply, headers={"Cache-Control": CACHE})
