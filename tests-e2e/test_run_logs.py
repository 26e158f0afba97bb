"""Run logs end to end (issue 19), through Traefik and the gateway with the stack's own worker: a
failing run of the demo `demo_live` source (a stdout line and a `context.logger` line per step,
then a failure) is followed live over `/api/ws?subscribe=run_logs`, and its logs are read back
through `GET /api/runs/{id}/logs`, as another organisation cannot."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import httpx

from icp_pipelines.demo import CATALOG_PATHS

os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))

FINISHED = ("success", "failed", "canceled")


def sign_in(client: httpx.Client, email: str, org: str) -> None:
    r = client.get("/api/auth/dev-login", params={"email": email}, follow_redirects=False)
    assert r.status_code == 302, r.text
    r = client.post("/api/organisations", json={"name": org})
    assert r.status_code == 201, r.text


def failing_live_job(client: httpx.Client) -> str:
    """A `demo_live` job whose asset prints and logs 4 steps over 2 s and fails after step 3."""
    r = client.post(
        "/api/sources/",
        json={"key": "demo_live", "name": "Live", "config": {"seconds": 2, "steps": 4, "fail_after": 3}},
    )
    assert r.status_code == 200, r.text
    r = client.post("/api/jobs/", json={"name": "live", "cron": "0 4 * * *", "source_ids": [r.json()["id"]]})
    assert r.status_code == 200, r.text
    job_id: str = r.json()["id"]
    return job_id


def all_logs(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        r = client.get(f"/api/runs/{run_id}/logs", params={"after": after, "limit": 2})
        assert r.status_code == 200, r.text
        lines += r.json()["items"]
        if r.json()["next_cursor"] is None:
            return lines
        after = r.json()["next_cursor"]


async def test_a_failing_runs_logs_are_followed_live_and_readable(base_url: str) -> None:
    import websockets

    suffix = uuid.uuid4().hex[:8]
    ivy = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True)
    mallory = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True)
    try:
        await asyncio.to_thread(sign_in, ivy, f"ivy-{suffix}@example.com", "Ivy Co")
        await asyncio.to_thread(sign_in, mallory, f"mallory-{suffix}@example.com", "Mallory Co")
        job_id = await asyncio.to_thread(failing_live_job, ivy)
        ws_url = base_url.replace("http://", "ws://") + "/api/ws"
        cookie = {"Cookie": f"session_token={ivy.cookies['session_token']}"}
        async with (
            websockets.connect(ws_url + "?subscribe=run_logs", additional_headers=cookie) as follower,
            websockets.connect(ws_url, additional_headers=cookie) as plain,
        ):
            await asyncio.sleep(0.5)  # the relay subscribes with deliver-new
            r = await asyncio.to_thread(ivy.post, f"/api/jobs/{job_id}/run")
            run_id = r.json()["run_id"]
            live: list[dict[str, Any]] = []
            order: list[str] = []  # "log" per run_logs frame, the run's statuses
            async with asyncio.timeout(60):
                while not order or order[-1] not in FINISHED:
                    message = json.loads(await follower.recv())
                    record = message["record"]
                    if message["table"] == "run_logs" and record["run_id"] == run_id:
                        live += record["lines"]
                        order.append("log")
                    elif message["table"] == "runs" and record["id"] == run_id:
                        order.append(record["status"])
            # The socket without the opt-in got the same run's frames, but no run_logs frame.
            plain_tables: list[str] = []
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await plain.recv())
                    plain_tables.append(message["table"])
                    if message["table"] == "runs" and message["record"]["status"] in FINISHED:
                        break
            assert "run_logs" not in plain_tables

        assert order[-1] == "failed"
        # Lines arrived while the run was running (followed live), not only at its end.
        assert order.index("log") < order.index("failed") and order.count("log") >= 2
        messages = [line["message"] for line in live]
        assert "working: step 1/4" in messages and "working: step 3/4" in messages
        assert "working: step 4/4" not in messages
        assert "INFO Progress: step 2/4 done" in messages
        assert any("Demo failure after step 3" in m for m in messages)

        stored = await asyncio.to_thread(all_logs, ivy, run_id)
        assert stored == live  # the same lines, in order, with the same seq
        assert {line["stream"] for line in stored} >= {"stdout", "logging", "system"}
        assert [line["asset"] for line in stored if line["stream"] == "stdout"] == [None] * 3

        r = await asyncio.to_thread(mallory.get, f"/api/runs/{run_id}/logs")
        assert r.status_code == 404 and r.json() == {"detail": f"Run {run_id} not found"}
        r = await asyncio.to_thread(ivy.get, f"/api/runs/{run_id}/logs", params={"limit": 0})
        assert r.status_code == 422
    finally:
        await asyncio.to_thread(ivy.close)
        await asyncio.to_thread(mallory.close)
