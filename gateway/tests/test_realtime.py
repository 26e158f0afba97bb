"""Realtime relay: JetStream realtime.<org>.<table> -> /api/ws and /api/events/stream."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from icp_common import nats as nats_helpers
from icp_common.streams import REALTIME

from .conftest import ORG1, ORG2, ORG9, SESSION1, SESSION1B, SESSION2, USER1, USER2, GatewayUnderTest


@pytest.fixture
async def publish(gateway: GatewayUnderTest) -> AsyncIterator[Any]:
    nc = await nats.connect(gateway.nats_url)
    await nats_helpers.ensure_stream(nc, REALTIME)
    js = nc.jetstream()
    counter = 0

    async def send(org: str, table: str = "runs", event: str = "INSERT", **record: Any) -> int:
        nonlocal counter
        counter += 1
        body = {"table": table, "event": event, "record": {"id": f"r{counter}", "org_id": org, **record}}
        ack = await js.publish(f"realtime.{org}.{table}", json.dumps(body).encode())
        return int(ack.seq)

    async def identity_event(subject: str, data: bytes | None = None, **payload: Any) -> None:
        """Publish like identity does (with an event id), or exactly `data`."""
        body = data if data is not None else json.dumps({"event_id": str(uuid.uuid4()), **payload}).encode()
        await nc.publish(subject, body)
        await nc.flush()

    send.identity_event = identity_event  # type: ignore[attr-defined]
    yield send
    await nc.close()


def ws_url(gateway: GatewayUnderTest, query: str = "") -> str:
    return gateway.url.replace("http://", "ws://") + "/api/ws" + query


def open_socket(gateway: GatewayUnderTest, token: str | None, query: str = "", **headers: str) -> Any:
    extra = {"Cookie": f"session_token={token}"} if token else {}
    return connect(ws_url(gateway, query), additional_headers={**extra, **headers}, open_timeout=5, compression=None)


async def receive(socket: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))  # type: ignore[no-any-return]


async def settle() -> None:
    await asyncio.sleep(0.2)  # the handshake registered the socket; let the hub see it


async def test_messages_reach_their_organisation_only(gateway: GatewayUnderTest, publish: Any) -> None:
    async with open_socket(gateway, "good") as org1, open_socket(gateway, "org2") as org2:
        await settle()
        await publish(ORG1, status="queued")
        await publish(ORG2, status="queued")
        await publish(ORG1, table="events", event="INSERT", run_id="r1")
        first, second = await receive(org1), await receive(org1)
        assert (first["table"], first["event"], first["record"]["org_id"]) == ("runs", "INSERT", ORG1)
        assert set(first) == {"table", "event", "record"}  # the default shape, no id
        assert second["table"] == "events"
        other = await receive(org2)
        assert other["record"]["org_id"] == ORG2
        with pytest.raises(TimeoutError):
            await receive(org2, timeout=0.3)


@pytest.mark.parametrize("token", [None, "stolen", "noorg", "removed"])
async def test_handshake_is_refused_with_403(gateway: GatewayUnderTest, token: str | None) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with open_socket(gateway, token):
            pass
    assert caught.value.response.status_code == 403


async def test_cross_site_handshake_is_refused(gateway: GatewayUnderTest) -> None:
    with pytest.raises(InvalidStatus):
        async with open_socket(gateway, "good", Origin="https://evil.example"):
            pass
    async with open_socket(gateway, "good", Origin=gateway.url):
        pass


async def test_member_removal_closes_the_socket(gateway: GatewayUnderTest, publish: Any) -> None:
    async with open_socket(gateway, "good") as socket:
        await settle()
        await publish.identity_event("identity.membership.removed", org_id=ORG1, user_id=USER1)
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(socket.recv(), 1.0)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4403


async def test_malformed_identity_events_are_dropped_and_the_next_one_is_applied(
    gateway: GatewayUnderTest, publish: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Only identity may publish identity.> (NATS permissions); still, a message that is not the
    contract (not JSON, no event id, an id that is not a UUID) closes nothing and breaks nothing."""
    caplog.set_level(logging.WARNING, logger="icp_gateway.realtime")
    subject = "identity.membership.removed"
    async with open_socket(gateway, "good") as socket:
        await settle()
        await publish.identity_event(subject, b"not json")
        await publish.identity_event(subject, b"\xff\xfe")
        await publish.identity_event(subject, json.dumps({"org_id": ORG1, "user_id": USER1}).encode())
        await publish.identity_event(subject, org_id="o1", user_id=USER1)
        await publish.identity_event(subject, org_id=ORG1, user_id=USER1)  # delivered after them, in order
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(socket.recv(), 1.0)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 4403
    dropped = [r for r in caplog.records if r.getMessage().startswith(f"ignoring a malformed {subject} event")]
    assert len(dropped) == 4


async def test_switching_organisation_closes_only_that_session(gateway: GatewayUnderTest, publish: Any) -> None:
    async with open_socket(gateway, "good") as switched, open_socket(gateway, "good2") as other_tab:
        await settle()
        await publish.identity_event("identity.session.switched", user_id=USER1, session_id=SESSION1, org_id=ORG9)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(switched.recv(), 1.0)
        await publish(ORG1)
        assert (await receive(other_tab))["record"]["org_id"] == ORG1


async def test_logout_closes_the_session_sockets(gateway: GatewayUnderTest, publish: Any) -> None:
    async with open_socket(gateway, "org2") as socket:
        await settle()
        await publish.identity_event("identity.session.revoked", user_id=USER2, session_ids=[SESSION2])
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 1.0)


async def test_resume_receives_what_was_missed(gateway: GatewayUnderTest, publish: Any) -> None:
    async with open_socket(gateway, "good", "?resume=1") as socket:
        await settle()
        await publish(ORG1, status="queued")
        seen = await receive(socket)
        assert isinstance(seen["id"], int) and seen["record"]["status"] == "queued"
    missed = [await publish(ORG1, status=s) for s in ("dispatched", "running")]
    await publish(ORG2, status="elsewhere")
    async with open_socket(gateway, "good", f"?since={seen['id']}") as socket:
        replayed = [await receive(socket), await receive(socket)]
        assert [m["id"] for m in replayed] == missed
        assert [m["record"]["status"] for m in replayed] == ["dispatched", "running"]
        await publish(ORG1, status="success")
        assert (await receive(socket))["record"]["status"] == "success"


async def test_slow_client_is_closed_without_delaying_others(gateway: GatewayUnderTest, publish: Any) -> None:
    from icp_gateway import realtime

    count = realtime.QUEUE_LIMIT + 600
    padding = base64.b64encode(os.urandom(12_000)).decode()  # incompressible
    # The slow client never reads: the websockets library stops reading from the socket after
    # a few frames, then the TCP buffers fill, then the gateway's queue for it.
    async with open_socket(gateway, "good") as fast, open_socket(gateway, "good2") as slow:
        await settle()
        slow_client = next(c for c in gateway_hub(gateway).clients[ORG1] if c.session_id == SESSION1B)

        async def read_all() -> int:
            for _ in range(count):
                await receive(fast, timeout=10)
            return count

        reader = asyncio.create_task(read_all())
        for n in range(count):
            await publish(ORG1, status="queued", n=n, padding=padding)
        assert await asyncio.wait_for(reader, 30) == count  # the fast client got everything
        assert slow_client.close_code == 1013
        assert slow_client not in gateway_hub(gateway).clients.get(ORG1, set())
        del slow


def gateway_hub(gateway: GatewayUnderTest) -> Any:
    return gateway.hub  # type: ignore[attr-defined]


async def test_sse_stream_with_last_event_id(gateway: GatewayUnderTest, publish: Any) -> None:
    first = await publish(ORG1, status="queued")
    second = await publish(ORG1, status="running")
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=5) as client,
        client.stream(
            "GET", "/api/events/stream", headers={"cookie": "session_token=good", "last-event-id": str(first)}
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        received: list[str] = []
        async for line in lines:
            if line.startswith("id: "):
                received.append(line)
            if len(received) == 1:
                break
        assert received == [f"id: {second}"]


async def test_sse_requires_membership(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        anonymous = await client.get("/api/events/stream")
        removed = await client.get("/api/events/stream", headers={"cookie": "session_token=removed"})
    assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "Not authenticated"})
    assert (removed.status_code, removed.json()) == (403, {"detail": "Not a member of this organisation"})


async def publish_when_ready(url: str, org: str, status: str, attempts: int = 60) -> int:
    """Publish one run frame with a fresh connection, as soon as JetStream accepts it."""
    for _ in range(attempts):
        try:
            nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
        except Exception:
            await asyncio.sleep(0.25)
            continue
        try:
            body = {"table": "runs", "event": "UPDATE", "record": {"id": status, "org_id": org, "status": status}}
            ack = await nc.jetstream().publish(f"realtime.{org}.runs", json.dumps(body).encode(), timeout=1)
            return int(ack.seq)
        except Exception:
            await asyncio.sleep(0.25)
        finally:
            await nc.close()
    raise AssertionError("JetStream never accepted the message")


async def test_frames_flow_again_soon_after_a_nats_restart(gateway: GatewayUnderTest, nats_server: Any) -> None:
    """The relay's consumer is recreated by the reconnect callback and resumes after the last
    relayed sequence: the next frame arrives without a gap or a duplicate, well before the client
    library's own inactivity check (~17 s) would have recreated it. The bound is generous on purpose."""
    hub = gateway.hub  # type: ignore[attr-defined]
    async with open_socket(gateway, "good", "?resume=1") as socket:
        await settle()
        before = await publish_when_ready(gateway.nats_url, ORG1, "before-restart")
        assert (await receive(socket))["id"] == before
        recreated = hub.resubscribed
        await asyncio.to_thread(nats_server.restart)
        after = await publish_when_ready(gateway.nats_url, ORG1, "after-restart")
        frame = await receive(socket, timeout=8)
        assert (frame["id"], frame["record"]["status"]) == (after, "after-restart")
        assert hub.resubscribed > recreated
        with pytest.raises(TimeoutError):
            await receive(socket, timeout=0.5)  # nothing replayed twice


async def test_a_message_is_encoded_once_for_all_its_clients() -> None:
    """1,000 sockets of one organisation: one `Frame` per message, shared by every client, each
    encoding (plain, with `id`, SSE) made once; the delivery counter moves once per message."""
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from icp_gateway import realtime

    hub = realtime.RealtimeHub()
    clients = [realtime.Client(ORG1, USER1, f"s{n}", with_ids=n % 2 == 0) for n in range(4)]
    other = realtime.Client(ORG2, USER2, SESSION2, with_ids=False)
    for client in (*clients, other):
        hub.add(client)
    payload = b'{"table":"runs","event":"INSERT","record":{"id":"r1"}}'
    msg = SimpleNamespace(
        subject=f"realtime.{ORG1}.runs", data=payload, metadata=SimpleNamespace(sequence=SimpleNamespace(stream=7))
    )
    delivered = REGISTRY.get_sample_value("icp_realtime_messages_total") or 0.0
    await hub._on_realtime(msg)  # type: ignore[arg-type]
    frames = [client.queue.get_nowait() for client in clients]
    assert all(frame is frames[0] for frame in frames) and other.queue.empty()
    frame = frames[0]
    assert frame is not None
    assert json.loads(frame.text(True)) == {"id": 7, **json.loads(payload)}
    assert frame.text(False) == payload.decode()
    assert frame.text(True) is frame.text(True) and frame.text(False) is frame.text(False)
    assert frame.sse() == b"id: 7\ndata: " + payload + b"\n\n" and frame.sse() is frame.sse()
    assert REGISTRY.get_sample_value("icp_realtime_messages_total") == delivered + len(clients)
    for client in (*clients, other):
        hub.remove(client)


async def test_run_logs_frames_reach_only_the_sockets_that_subscribe(gateway: GatewayUnderTest, publish: Any) -> None:
    """`run_logs` frames (issue 19) are not part of the web UI's frame contract: a socket gets them
    only with `?subscribe=run_logs`, live and on resume."""
    async with open_socket(gateway, "good") as plain, open_socket(gateway, "good", "?subscribe=run_logs") as follower:
        await settle()
        first = await publish(ORG1, table="run_logs", lines=[{"seq": 1, "message": "hello"}])
        await publish(ORG1, status="running")
        assert (await receive(plain))["table"] == "runs"  # the logs frame was skipped
        got = [await receive(follower), await receive(follower)]
        assert [m["table"] for m in got] == ["run_logs", "runs"]
        assert got[0]["record"]["lines"] == [{"seq": 1, "message": "hello"}]
    since = first - 1
    async with open_socket(gateway, "good", f"?since={since}") as plain:
        assert (await receive(plain))["table"] == "runs"
    async with open_socket(gateway, "good", f"?since={since}&subscribe=run_logs,unknown") as follower:
        assert [(await receive(follower))["table"], (await receive(follower))["table"]] == ["run_logs", "runs"]
