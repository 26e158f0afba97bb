"""A local webhook receiver for tests: a tiny HTTP/1.1 server on 127.0.0.1 that records every
request and answers with the next status of `statuses` (then 200)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class WebhookReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    statuses: list[int] = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    answered: list[ReceivedRequest] = field(default_factory=list)  # answered 2xx
    # Hold the first request unanswered until `release` is set or the client goes away (a sender
    # killed mid-request): that request is then never answered.
    hold_first: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def start(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = ReceivedRequest(method, path, headers, body)
                self.requests.append(request)
                if self.hold_first and len(self.requests) == 1 and not await self._released(reader):
                    return
                status = self.statuses.pop(0) if self.statuses else 200
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
                if 200 <= status < 300:
                    self.answered.append(request)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def _released(self, reader: asyncio.StreamReader) -> bool:
        """True once released; False if the client closed the connection first."""
        closed = asyncio.ensure_future(reader.read(1))
        released = asyncio.ensure_future(self.release.wait())
        done, pending = await asyncio.wait({closed, released}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return released in done

    async def wait(self, count: int = 1, within: float = 30.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + within
        while len(self.requests) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - polling is simplest here
            await asyncio.sleep(0.02)
        assert len(self.requests) >= count, f"expected {count} webhook request(s), got {len(self.requests)}"
        return self.requests
