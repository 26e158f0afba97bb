"""Both spellings of a path, served directly: `/api/runs` and `/api/runs/`.

Starlette answers the spelling a route was not declared with by a 307 to the other one. The
web UI sends collection paths without the slash and scripts use either, so every request would
pay a redirect (and `curl` without `-L` prints nothing). Instead, a path that matches no route
is retried with the trailing slash added or removed, in place, before routing; no alias route
is declared, so the OpenAPI document lists each path once, as declared."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send


def _matches(routes: Sequence[BaseRoute], scope: Scope) -> bool:
    # PARTIAL = the path matches with another method: that route answers (405), not an alias.
    return any(route.matches(scope)[0] != Match.NONE for route in routes)


def _other_spelling(scope: Scope) -> Scope:
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    if path.endswith("/"):
        return {**scope, "path": path.rstrip("/"), "raw_path": raw.rstrip(b"/")}
    return {**scope, "path": path + "/", "raw_path": raw + b"/"}


class TrailingSlashAlias:
    """ASGI middleware in front of an app's router (whose routes are read per request, so
    routers included after the middleware was added count too)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in ("", "/") and not _matches(self.routes, scope):
            other = _other_spelling(scope)
            if _matches(self.routes, other):
                scope = other
        await self.app(scope, receive, send)
