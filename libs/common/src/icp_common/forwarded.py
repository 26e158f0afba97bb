"""Trust the gateway's X-Forwarded-Proto/-Host, so absolute URLs a service builds (the
trailing-slash 307 `Location`) carry the public scheme and host.

A service's HTTP port is internal (never routed by the edge); only the gateway reaches it,
and the edge overwrites client-sent X-Forwarded-* headers."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


def _first(value: bytes) -> str:
    return value.decode("latin-1").split(",")[0].strip()


class ForwardedHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            proto = host = None
            for key, value in headers:
                if key == b"x-forwarded-proto":
                    proto = _first(value).lower()
                elif key == b"x-forwarded-host":
                    host = _first(value)
            if proto in ("http", "https") or host:
                scope = dict(scope)
                if proto in ("http", "https"):
                    scope["scheme"] = proto if scope["type"] == "http" else ("wss" if proto == "https" else "ws")
                if host:
                    scope["headers"] = [(k, v) for k, v in headers if k != b"host"] + [
                        (b"host", host.encode("latin-1"))
                    ]
        await self.app(scope, receive, send)
