"""The streaming proxy against raw upstream sockets: a dropped keep-alive connection is
retried for requests without a body, and a broken answer is a clean error, never a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from icp_common.web import MAX_BODY_BYTES
from icp_gateway.proxy import UpstreamDown, UpstreamFailed, forward, new_session


class FlakyUpstream:
    """Closes the first `drops` connections without answering, then answers 200 `ok`."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.connections <= self.drops:
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyUpstream, str]]:
    upstream = FlakyUpstream(drops=1)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield upstream, f"http://127.0.0.1:{port}"
    server.close()


def scope(method: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/api/x", "raw_path": b"/api/x", "query_string": b""}


async def run(
    base_url: str, method: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with new_session(2.0, 5.0) as session:
        await forward(session, base_url, scope(method), receive, send, headers, MAX_BODY_BYTES)
    return sent


async def test_a_dropped_connection_is_retried_without_a_body(flaky: tuple[FlakyUpstream, str]) -> None:
    upstream, url = flaky
    sent = await run(url, "GET", [(b"host", b"x")])
    assert sent[0]["status"] == 200 and b"".join(m.get("body", b"") for m in sent[1:]) == b"ok"
    assert upstream.connections == 2


async def test_a_request_with_a_body_is_not_replayed(flaky: tuple[FlakyUpstream, str]) -> None:
    upstream, url = flaky
    with pytest.raises(UpstreamFailed):
        await run(url, "POST", [(b"host", b"x"), (b"content-length", b"2")], b"{}")
    assert upstream.connections == 1


class DyingReplicas:
    """Answers the first `failures` requests as a balancer does when a replica dies mid-answer
    (plain-text `status`), then 200 `ok`."""

    def __init__(self, failures: int, status: int) -> None:
        self.failures, self.status, self.requests = failures, status, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
            )
            await reader.readexactly(length)
            self.requests += 1
            if self.requests <= self.failures:
                text = b"Internal Server Error" if self.status == 500 else b"Bad Gateway"
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
                    % (self.status, len(text), text)
                )
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            await writer.drain()
        writer.close()


@pytest.fixture
async def dying() -> AsyncIterator[Any]:
    servers = []

    async def start(failures: int, status: int = 500) -> tuple[DyingReplicas, str]:
        upstream = DyingReplicas(failures, status)
        server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
        servers.append(server)
        return upstream, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def test_a_balancers_plain_5xx_on_a_read_is_sent_once_more(dying: Any) -> None:
    upstream, url = await dying(failures=1)
    sent = await run(url, "GET", [(b"host", b"x")])
    assert sent[0]["status"] == 200 and upstream.requests == 2


async def test_a_balancers_plain_5xx_on_a_write_is_our_json_error_not_replayed(dying: Any) -> None:
    upstream, url = await dying(failures=1, status=502)
    with pytest.raises(UpstreamFailed):
        await run(url, "POST", [(b"host", b"x"), (b"content-length", b"2")], b"{}")
    assert upstream.requests == 1


async def test_no_healthy_replica_is_service_unavailable(dying: Any) -> None:
    _, url = await dying(failures=5, status=503)
    with pytest.raises(UpstreamDown):
        await run(url, "GET", [(b"host", b"x")])


@pytest.mark.parametrize(
    ("content_type", "extra"),
    [(b"application/json", b""), (b"text/html", b""), (b"text/plain", b"X-Request-Id: r1\r\n")],
)
async def test_a_services_own_500_is_passed_on(content_type: bytes, extra: bytes) -> None:
    class OwnError(DyingReplicas):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            body = b"Internal Server Error"
            writer.write(
                b"HTTP/1.1 500 X\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n%s"
                % (content_type, extra, len(body), body)
            )
            await writer.drain()
            writer.close()

    upstream = OwnError(0, 500)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    try:
        sent = await run(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", "GET", [(b"host", b"x")])
    finally:
        server.close()
    assert sent[0]["status"] == 500 and upstream.requests == 1
