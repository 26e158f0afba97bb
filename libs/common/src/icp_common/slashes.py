"""Both spellings of a path, served directly: `/api/runs` and `/api/runs/`.

Starlette answers the spelling a route was not declared with by a 307 to the other one. The
web UI sends collection paths without the slash and scripts use either, so every request would
pay a redirect (and `curl` without `-L` prints nothing). Instead, a path that matches no route
is retried with the trailing slash added or removed, in place of the router's 404; no alias
route is declared, so the OpenAPI document lists each path once, as declared."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send


def _matches(routes: Sequence[BaseRoute], scope: Scope) -> bool:
    # PARTIAL = the path matches with another method: that route answers (405), not an alias.
    return any(route.matches(scope)[0] != Match.NONE for route in routes)


def _other_spelling(scope: Scope) -> Scope:
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    if path.endswith("/"):
        return {**scope, "path": path.rstrip("/"), "raw_path": raw.rstrip(b"/")}
    return {**scope, "path": path + "/", "raw_path": raw + b"/"}


def install_trailing_slash_alias(app: FastAPI) -> None:
    """Serve the other spelling of a path that matches no route, instead of Starlette's 307.

    It takes the place of the router's not-found handler, so a request that matches a route as
    sent costs nothing more; routers included later count too (the routes are read per request)."""
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def other_spelling_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in ("", "/"):
            other = _other_spelling(scope)
            if _matches(router.routes, other):
                await router.app(other, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = other_spelling_or_not_found
