"""Realtime through Traefik and the gateway: WebSocket and SSE scoping, handshake refusals,
member removal, resume after a disconnect, a NATS restart with sockets open, and open streams
re-checked (a session that expires while its socket is open)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from icp_stack.pytest_plugin import StackHandle

# The gateway re-checks open streams every INTERLOPER_REALTIME_RECHECK_SECONDS (30 s by default);
# the launcher passes its environment to the services, so this is set before any stack starts.
os.environ.setdefault("INTERLOPER_REALTIME_RECHECK_SECONDS", "1")


def signed_in(base_url: str, email: str, org: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30.0)
    assert client.get("/api/auth/dev-login", params={"email": email}).status_code == 302
    if org:
        assert client.post("/api/organisations", json={"name": org}).status_code == 201
    return client


def cookie(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": f"session_token={client.cookies['session_token']}"}


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + "/api/ws" + query


async def next_run_message(socket: Any, run_id: str, timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = json.loads(await socket.recv())
            if message.get("table") == "runs" and message["record"]["id"] == run_id:
                return message


def trigger(client: httpx.Client, job_id: str) -> str:
    response = client.post(f"/api/jobs/{job_id}/run")
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


@pytest.fixture
def admin_with_job(base_url: str) -> Any:
    admin = signed_in(base_url, f"rt-{uuid.uuid4().hex[:8]}@example.com", "Realtime Org")
    job = admin.post("/api/jobs/", json={"name": "rt", "cron": "0 0 * * *", "enabled": False}).json()
    yield admin, job["id"]
    admin.close()


async def test_handshake_refusals_through_traefik(base_url: str) -> None:
    no_org = signed_in(base_url, f"rt-noorg-{uuid.uuid4().hex[:8]}@example.com")
    for headers in ({}, {"Cookie": "session_token=forged"}, cookie(no_org)):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(ws_url(base_url), additional_headers=headers):
                pass
        assert caught.value.response.status_code == 403
    no_org.close()


async def test_logout_closes_the_open_socket(base_url: str, admin_with_job: Any) -> None:
    """identity publishes identity.session.revoked; the gateway closes that session's sockets.
    (Member removal and organisation switches take the same path; see gateway/tests.)"""
    admin, _ = admin_with_job
    headers = cookie(admin)
    async with websockets.connect(ws_url(base_url), additional_headers=headers) as socket:
        await asyncio.sleep(0.3)
        assert (await asyncio.to_thread(admin.post, "/api/auth/logout")).status_code == 200
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                await socket.recv()
    with pytest.raises(InvalidStatus):  # and the ended session cannot come back
        async with websockets.connect(ws_url(base_url), additional_headers=headers):
            pass


async def test_resume_after_a_disconnect_receives_the_gap(base_url: str, admin_with_job: Any) -> None:
    admin, job_id = admin_with_job
    async with websockets.connect(ws_url(base_url, "?resume=1"), additional_headers=cookie(admin)) as socket:
        await asyncio.sleep(0.3)
        first = await next_run_message(socket, await asyncio.to_thread(trigger, admin, job_id))
    missed = await asyncio.to_thread(trigger, admin, job_id)
    async with websockets.connect(
        ws_url(base_url, f"?since={first['id']}"), additional_headers=cookie(admin)
    ) as socket:
        message = await next_run_message(socket, missed)
        assert message["event"] == "INSERT" and message["id"] > first["id"]


async def test_sse_stream_through_traefik(base_url: str, admin_with_job: Any) -> None:
    admin, job_id = admin_with_job
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=15) as client,
        client.stream("GET", "/api/events/stream", headers=cookie(admin)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "gzip" not in response.headers.get("content-encoding", "")
        run_id = await asyncio.to_thread(trigger, admin, job_id)
        async with asyncio.timeout(15):
            async for line in response.aiter_lines():
                if line.startswith("data: ") and run_id in line:
                    break


async def test_sockets_keep_working_across_a_nats_restart(
    base_url: str, stack: StackHandle, admin_with_job: Any
) -> None:
    admin, job_id = admin_with_job
    async with websockets.connect(ws_url(base_url), additional_headers=cookie(admin)) as socket:
        await asyncio.sleep(0.3)
        killed = stack.kill_component("nats")
        # Committed while NATS is down: the outbox keeps the change until it is back.
        during = await asyncio.to_thread(trigger, admin, job_id)
        await asyncio.to_thread(stack.wait_component_ready, "nats", not_pid=killed)
        message = await next_run_message(socket, during, timeout=45)
        assert message["event"] in ("INSERT", "UPDATE")
        after = await asyncio.to_thread(trigger, admin, job_id)
        assert (await next_run_message(socket, after, timeout=30))["record"]["id"] == after


def second_session(base_url: str, client: httpx.Client) -> httpx.Client:
    """Another session of the same person, with the same active organisation."""
    org_id = client.get("/api/organisations").json()[0]["id"]
    other = signed_in(base_url, client.get("/api/auth/me").json()["email"])
    assert other.post("/api/auth/switch-org", json={"organisation_id": org_id}).status_code == 200
    return other


async def expire_session(stack: StackHandle, client: httpx.Client) -> None:
    """Let the client's session reach its end, as time would (nothing announces an expiry)."""
    token_hash = hashlib.sha256(client.cookies["session_token"].encode()).hexdigest()
    dsn = stack.postgres_dsn("postgres", "interloper_identity")
    connection = await asyncpg.connect(dsn)
    try:
        updated = await connection.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1", token_hash
        )
    finally:
        await connection.close()
    assert updated == "UPDATE 1"


async def test_a_socket_whose_session_expires_is_closed(base_url: str, stack: StackHandle, admin_with_job: Any) -> None:
    admin, job_id = admin_with_job
    other = await asyncio.to_thread(second_session, base_url, admin)
    async with (
        websockets.connect(ws_url(base_url), additional_headers=cookie(other)) as keeper,
        websockets.connect(ws_url(base_url), additional_headers=cookie(admin)) as expiring,
    ):
        await asyncio.sleep(0.3)
        await expire_session(stack, admin)
        await asyncio.to_thread(trigger, other, job_id)  # the organisation keeps publishing
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):  # re-checked every second: a bound, not a measurement
                while True:
                    await expiring.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # The valid socket, open since before the expired one, went through its re-checks too.
        after = await asyncio.to_thread(trigger, other, job_id)
        assert (await next_run_message(keeper, after))["record"]["id"] == after
    other.close()


async def test_an_sse_stream_whose_session_expires_ends(base_url: str, stack: StackHandle, admin_with_job: Any) -> None:
    admin, job_id = admin_with_job
    other = await asyncio.to_thread(second_session, base_url, admin)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/api/events/stream", headers=cookie(other)) as response,
    ):
        assert response.status_code == 200
        await expire_session(stack, other)
        await asyncio.to_thread(trigger, admin, job_id)
        lines = []
        async with asyncio.timeout(30):
            async for line in response.aiter_lines():  # ends when the gateway ends the stream
                lines.append(line)
        assert "event: close" in lines and lines[lines.index("event: close") + 1] == "data: session ended"
    other.close()
