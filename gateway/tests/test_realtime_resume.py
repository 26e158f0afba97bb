"""A resume (`/api/ws?since=`) replays what was missed without a gap, even when the server is
slow to answer: frames after a gap would move the client's `since` past what it never got."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.client import JetStreamContext
from websockets.exceptions import ConnectionClosed

from icp_gateway.realtime import Client

from .conftest import ORG1, ORG2, GatewayUnderTest
from .test_realtime import open_socket, publish, receive

__all__ = ["publish"]  # the fixture, shared with test_realtime


def slow_fetches(monkeypatch: pytest.MonkeyPatch, timeouts: int | None) -> None:
    """The backlog's first `timeouts` fetches (all when None) time out, as on a busy server."""
    real = JetStreamContext.PullSubscription.fetch
    calls = {"n": 0}

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if timeouts is None or calls["n"] <= timeouts:
            raise TimeoutError
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)


async def test_a_slow_backlog_read_is_retried_not_cut_short(
    gateway: GatewayUnderTest, publish: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = await publish(ORG1, status="queued")
    missed = [await publish(ORG1, status=s) for s in ("dispatched", "running")]
    slow_fetches(monkeypatch, timeouts=2)
    async with open_socket(gateway, "good", f"?since={since}") as socket:
        replayed = [await receive(socket), await receive(socket)]
        assert [m["id"] for m in replayed] == missed
        live = await publish(ORG1, status="success")
        assert (await receive(socket))["id"] == live


async def test_a_backlog_that_cannot_be_read_closes_the_socket_before_any_later_frame(
    gateway: GatewayUnderTest, publish: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from icp_gateway import realtime

    monkeypatch.setattr(realtime, "BACKLOG_SECONDS", 0.5)
    since = await publish(ORG1, status="queued")
    missed = await publish(ORG1, status="dispatched")
    slow_fetches(monkeypatch, timeouts=None)
    async with open_socket(gateway, "good", f"?since={since}") as socket:
        await publish(ORG1, status="running")  # live, while the backlog cannot be read
        with pytest.raises(ConnectionClosed) as closed:
            frame = await receive(socket)
            raise AssertionError(f"a frame after a gap: {frame}")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    monkeypatch.undo()
    async with open_socket(gateway, "good", f"?since={since}") as socket:  # the client resumes
        assert (await receive(socket))["id"] == missed


async def test_a_resume_with_nothing_missed_reads_no_backlog(
    gateway: GatewayUnderTest, publish: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = await publish(ORG1, status="queued")
    await publish(ORG2, status="elsewhere")  # the stream goes on, the organisation's part does not
    slow_fetches(monkeypatch, timeouts=None)  # a fetch would wait out BACKLOG_SECONDS, then give up
    client = Client(ORG1, "user", "session", with_ids=True)
    assert await gateway.hub.backlog(ORG1, last, client=client) == []  # type: ignore[attr-defined]
    assert client.close_code is None
