"""Streaming HTTP proxy to the services: bodies are relayed chunk by chunk both ways (no
buffering of uploads or SSE), hop-by-hop headers dropped, the upstream closed when the
client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        # set by the gateway's own server and middleware
        b"date",
        b"server",
        b"x-request-id",
    }
)


class UpstreamDown(Exception):
    """The service did not accept the connection (down, restarting)."""


class UpstreamFailed(Exception):
    """The connection broke before the service answered."""


# A pooled connection the service has just closed fails before the request reaches it:
# safe to send once more on a fresh connection when the request has no body.
_RETRYABLE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"transfer-encoding" or (name == b"content-length" and value != b"0") for name, value in headers)


async def forward(
    client: httpx.AsyncClient,
    base_url: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send the request in `scope` to `base_url` with `headers` and stream the answer back."""
    path = scope.get("raw_path") or scope["path"].encode()
    url = base_url + path.decode("latin-1")
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    has_body = _has_body(headers)
    request = client.build_request(
        scope["method"], url, headers=headers, content=_request_body(receive) if has_body else None
    )
    try:
        try:
            response = await client.send(request, stream=True)
        except _RETRYABLE:
            if has_body:
                raise
            response = await client.send(request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UpstreamDown(str(exc) or type(exc).__name__) from exc
    except (*_RETRYABLE, httpx.ReadTimeout, httpx.PoolTimeout) as exc:
        raise UpstreamFailed(str(exc) or type(exc).__name__) from exc

    async def relay() -> None:
        raw = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_gone() -> None:
        # The request body is fully sent by now, so the next message can only be a disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass

    relaying = asyncio.create_task(relay())
    watcher = asyncio.create_task(client_gone())
    try:
        await asyncio.wait({relaying, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not relaying.done():
            log.info("client went away; closing upstream %s", url)
            relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.ReadTimeout):
            await relaying
    finally:
        watcher.cancel()
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await response.aclose()
