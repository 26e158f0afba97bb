"""`/api/ws` (WebSocket) and `/api/events/stream` (Server-Sent Events): the organisation's
realtime messages, authenticated from the session cookie (or an API token) through identity."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from icp_common.errors import DomainError, Forbidden, InvalidInput
from icp_common.identity import Identity, require_role

from .authn import SESSION_COOKIE, Authenticator, bearer_token
from .realtime import Client, RealtimeHub, opt_ins
from .revalidation import revalidate, stream_key

log = logging.getLogger(__name__)

SSE_HEARTBEAT_SECONDS = 15.0


def _since(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidInput("since must be a message id (a non-negative integer)")
    return int(value)


def install_realtime_routes(
    app: FastAPI,
    hub: RealtimeHub,
    authenticator: Callable[[], Authenticator],
    origin_allowed: Callable[[dict[str, str]], bool],
    recheck_seconds: float = 30.0,
) -> None:
    def authenticate_fresh(bearer: str | None) -> Callable[[str | None], Awaitable[Identity]]:
        """Past the session cache (handshake and re-checks): a stream lives long, and its
        re-check is what catches an expiry or a missed event. An API token (`Authorization:
        Bearer ilp_...`, for scripts: browsers cannot set it) beats the cookie."""

        async def fresh(cookie: str | None) -> Identity:
            return await authenticator().authenticate(cookie, fresh=True, bearer=bearer)

        return fresh

    async def identify(cookie: str | None, bearer: str | None) -> Identity:
        identity = await authenticate_fresh(bearer)(cookie)
        return require_role(identity, "viewer")  # signed in, active org that exists, a member

    @app.websocket("/api/ws")
    async def websocket(socket: WebSocket) -> None:
        try:
            if not origin_allowed(dict(socket.headers)):  # cross-site WebSocket hijacking
                raise Forbidden("Cross-site request refused")
            token = socket.cookies.get(SESSION_COOKIE)
            bearer = bearer_token(socket.headers.get("authorization"))
            identity = await identify(token, bearer)
            since = _since(socket.query_params.get("since"))
        except DomainError as exc:
            log.info("realtime handshake refused: %s", exc.detail)
            await socket.close(code=1008)  # before accept: an HTTP 403 handshake rejection
            return
        with_ids = socket.query_params.get("resume") in ("1", "true") or since is not None
        client = Client(identity.org_id or "", identity.user_id or "", stream_key(identity), with_ids)
        client.opt_ins = opt_ins(socket.query_params.get("subscribe"))  # e.g. run_logs
        await socket.accept()
        hub.add(client)
        reader = asyncio.create_task(_ignore_incoming(socket, client))
        recheck = asyncio.create_task(revalidate(client, token, authenticate_fresh(bearer), recheck_seconds))
        try:
            if since is not None:
                for seq, data in await hub.backlog(client.org_id, since, client=client):
                    await socket.send_text(client.frame(seq, data).decode())
                    client.last_seq = seq
            pump = asyncio.create_task(_pump(client, socket.send_text))
            stop = asyncio.create_task(client.closed.wait())
            await asyncio.wait({pump, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (pump, stop):
                task.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.remove(client)
            reader.cancel()
            recheck.cancel()
            if socket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    # A stalled peer cannot take a close frame: give up after a moment.
                    await asyncio.wait_for(
                        socket.close(code=client.close_code or 1000, reason=client.close_reason), 2.0
                    )

    @app.get("/api/events/stream")
    async def event_stream(
        request: Request, since: str | None = None, subscribe: str | None = None
    ) -> StreamingResponse:
        token = request.cookies.get(SESSION_COOKIE)
        bearer = bearer_token(request.headers.get("authorization"))
        identity = await identify(token, bearer)
        start = _since(request.headers.get("last-event-id") or since)
        client = Client(identity.org_id or "", identity.user_id or "", stream_key(identity), True)
        client.opt_ins = opt_ins(subscribe)
        hub.add(client)

        async def frames() -> AsyncIterator[bytes]:
            recheck = asyncio.create_task(revalidate(client, token, authenticate_fresh(bearer), recheck_seconds))
            try:
                yield b"retry: 1000\n\n"
                if start is not None:
                    for seq, data in await hub.backlog(client.org_id, start, client=client):
                        client.last_seq = seq
                        yield _sse(seq, data)
                while True:
                    try:
                        item = await asyncio.wait_for(client.queue.get(), SSE_HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if item is None or client.close_code is not None:  # also when its queue was full
                        yield b"event: close\ndata: " + client.close_reason.encode() + b"\n\n"
                        return
                    if item.seq > client.last_seq:
                        client.last_seq = item.seq
                        yield item.sse()
            finally:
                recheck.cancel()
                hub.remove(client)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _sse(seq: int, data: bytes) -> bytes:
    return b"id: " + str(seq).encode() + b"\ndata: " + data + b"\n\n"


async def _ignore_incoming(socket: WebSocket, client: Client) -> None:
    """Client frames are read and ignored; when the client goes away its sender stops."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    client.close(1000, "client left")


async def _pump(client: Client, send: Callable[[str], Awaitable[None]]) -> None:
    """Send queued messages until the hub or the reader closes the client (each message's text
    is encoded once for all its clients: `Frame`)."""
    while (frame := await client.queue.get()) is not None and client.close_code is None:
        if frame.seq > client.last_seq:
            client.last_seq = frame.seq
            await send(frame.text(client.with_ids))
