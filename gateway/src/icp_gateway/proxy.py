"""Streaming HTTP proxy to the services: bodies are relayed chunk by chunk both ways (no
buffering of uploads or SSE), hop-by-hop headers dropped, the upstream closed when the
client goes away.

aiohttp rather than httpx here: its connection pool costs O(1) per request, where httpcore
polls every pooled socket on each request (measured: the main cost of the gateway hop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict
from starlette.types import Receive, Scope, Send
from yarl import URL

from icp_common import telemetry

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
# Connection-level request headers; the proxy frames the body itself (chunked when streamed).
_REQUEST_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
# Answers up to this size (with a Content-Length) are read whole and sent in one piece.
_SMALL_BODY = 256 * 1024


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _foreign_error(response: aiohttp.ClientResponse) -> bool:
    """A 5xx no service of ours wrote: every answer of theirs carries the request id
    (icp_common.web), and none of their errors is bare text. What is left is the internal
    balancer's in front of replicas (Traefik's plain "Bad Gateway"/"Internal Server Error" when a
    replica dies mid-answer, "Service Unavailable" when none is healthy). The client gets our JSON
    error shape instead, and a safe request is sent once more."""
    return (
        response.status in (500, 502, 503, 504)
        and response.content_type == "text/plain"
        and "x-request-id" not in response.headers
    )


class UpstreamDown(Exception):
    """The service did not accept the connection (down, restarting)."""


class UpstreamFailed(Exception):
    """The connection broke before the service answered."""


# A pooled connection the service has just closed fails before the request reaches it:
# safe to send once more on a fresh connection when the request has no body.
_RETRYABLE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def _trace_configs() -> list[aiohttp.TraceConfig]:
    """Client spans + traceparent on every upstream request when tracing is on (else none)."""
    if not telemetry.enabled():
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    # The URL without its query string (OAuth codes, states).
    return [create_trace_config(url_filter=lambda url: str(url.with_query(None)))]


def new_session(connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        trace_configs=_trace_configs() or None,
        connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=30.0, ttl_dns_cache=60),
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),  # never keep one user's cookies for another
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


class BodyTooLarge(Exception):
    """The client sent more than the limit (counted as it streams: chunked bodies too)."""


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _request_body(receive: Receive, limit: int, flag: list[BodyTooLarge]) -> AsyncIterator[bytes]:
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        seen += len(body)
        if seen > limit:
            # Raising aborts the upstream request mid-body (no final chunk): the service never
            # sees a complete, truncated request that it could act on.
            flag.append(BodyTooLarge())
            raise flag[-1]
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"transfer-encoding" or (name == b"content-length" and value != b"0") for name, value in headers)


async def forward(
    session: aiohttp.ClientSession,
    base_url: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    max_body: int,
) -> None:
    """Send the request in `scope` to `base_url` with `headers` and stream the answer back.
    BodyTooLarge when the request body grows beyond `max_body` bytes."""
    path = scope.get("raw_path") or scope["path"].encode()
    url = base_url + path.decode("latin-1")
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode("latin-1")
    has_body = _has_body(headers)
    request_headers = CIMultiDict(
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k not in _REQUEST_HOP_BY_HOP
    )

    too_large: list[BodyTooLarge] = []

    async def send_request() -> aiohttp.ClientResponse:
        try:
            return await session.request(
                scope["method"],
                URL(url, encoded=True),
                headers=request_headers,
                data=_request_body(receive, max_body, too_large) if has_body else None,
                allow_redirects=False,
            )
        except Exception:
            if too_large:  # however aiohttp wrapped it
                raise too_large[0] from None
            raise

    try:
        try:
            response = await send_request()
        except _RETRYABLE:
            if has_body:
                raise
            response = await send_request()
        if _foreign_error(response) and not has_body and scope["method"] in _SAFE_METHODS:
            response.release()
            response = await send_request()  # the balancer has another replica (or the same, back)
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamDown(str(exc) or type(exc).__name__) from exc
    except (*_RETRYABLE, aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamFailed(str(exc) or type(exc).__name__) from exc
    if _foreign_error(response):
        status = response.status
        response.release()
        if status == 503:
            raise UpstreamDown("no replica available (the balancer's 503)")
        raise UpstreamFailed(f"the balancer's {status}: a replica died while answering")

    raw = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP]
    try:
        if response.content_length is not None and response.content_length <= _SMALL_BODY:
            body = await response.read()
            await send({"type": "http.response.start", "status": response.status, "headers": raw})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await _stream(response, raw, receive, send, url)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("upstream %s broke mid-response: %s", url, exc)
    finally:
        response.release()


async def _stream(
    response: aiohttp.ClientResponse, raw: list[tuple[bytes, bytes]], receive: Receive, send: Send, url: str
) -> None:
    """Relay a streamed answer (SSE, large bodies) until it ends or the client goes away."""

    async def relay() -> None:
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        async for chunk in response.content.iter_any():
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
            response.close()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
    finally:
        watcher.cancel()
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
