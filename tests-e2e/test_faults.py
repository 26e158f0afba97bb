"""Faults injected into the running stack (issue 22): the gateway killed behind Traefik, a worker
killed while a run executes, PostgreSQL killed during a backfill, NATS killed while an
invitation is being e-mailed. Each checks the end state, not how fast it is reached."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import psutil

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

# Set before any stack starts (the launcher passes its environment on): the demo catalog, and a
# reaper quick enough for a test (a run without heartbeat for 10 s is lost; sweeps every second).
os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))
os.environ.setdefault("INTERLOPER_REAPER_HEARTBEAT_TIMEOUT", "10")
os.environ.setdefault("INTERLOPER_REAPER_POLL_INTERVAL", "1")


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} still alive")


def test_a_killed_gateway_gives_json_503_at_the_edge_then_recovers(api: httpx.Client, stack: StackHandle) -> None:
    """While the gateway restarts, Traefik fails over to the edge fallback: every answer is the
    gateway's own or a JSON 503 with Retry-After and X-Request-Id, never Traefik's text/plain 502."""
    assert api.get("/api/health").status_code == 200
    old = stack.kill_component("gateway")
    # A request written to the gateway as it dies (in flight, or on a kept-alive connection
    # Traefik has not yet seen closed) gets Traefik's 502: Traefik cannot know whether it was
    # processed, so it neither retries nor fails it over. Requests after that never see one.
    wait_gone(old)
    time.sleep(0.5)
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for method in ("GET", "POST"):
            answers.append(api.request(method, "/api/health", headers={"X-Request-Id": "edge-test-1"}))
        if stack.component("gateway").get("pid") not in (None, old) and answers[-1].status_code != 503:
            break
        time.sleep(0.05)
    stack.wait_component_ready("gateway", not_pid=old)
    unavailable = [r for r in answers if r.status_code == 503]
    assert unavailable, "no request reached the edge while the gateway was down"
    for response in answers:
        assert response.status_code in (200, 405, 503), (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), response.headers
    for response in unavailable:
        assert response.json()["detail"].startswith("Service unavailable")
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["x-request-id"] == "edge-test-1"
    assert api.get("/api/health").status_code == 200


# ---- item 5: faults in the middle of work ---------------------------------------------------------

FINISHED = ("success", "failed", "canceled")


def until(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {value!r}")


def signed_in(base_url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30.0)
    email = f"{name}-{uuid.uuid4().hex[:8]}@faults.example"
    assert client.get("/api/auth/dev-login", params={"email": email}).status_code == 302
    assert client.post("/api/organisations", json={"name": f"Faults {name}"}).status_code == 201
    return client


def live_job(client: httpx.Client, seconds: float, partitioned: bool = False) -> str:
    """A job of the demo `demo_live` source (its `progress` asset works for `seconds`)."""
    destination = client.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "faults"}}
    ).json()
    source = client.post(
        "/api/sources/",
        json={
            "key": "demo_live",
            "name": "Live",
            "config": {"seconds": seconds, "steps": max(1, int(seconds))},
            "destination_ids": [destination["id"]],
        },
    )
    assert source.status_code == 200, source.text
    job = client.post(
        "/api/jobs/",
        json={"name": "live", "cron": "0 4 * * *", "source_ids": [source.json()["id"]], "partitioned": partitioned},
    )
    assert job.status_code == 200, job.text
    return str(job.json()["id"])


def failure_of(client: httpx.Client, run_id: str) -> list[str | None]:
    return [e["error"] for e in client.get(f"/api/runs/{run_id}/events").json() if e["event_type"] == "run_failed"]


async def run_row(stack: StackHandle, run_id: str) -> dict[str, Any]:
    connection = await asyncpg.connect(stack.postgres_dsn("postgres", "interloper_pipelines"))
    try:
        row = await connection.fetchrow("SELECT status, worker_id FROM runs WHERE id = $1", uuid.UUID(run_id))
    finally:
        await connection.close()
    assert row is not None
    return dict(row)


async def test_a_worker_killed_while_a_run_executes_is_reaped_with_the_reason(
    base_url: str, stack: StackHandle
) -> None:
    """kill -9 of the worker mid-run: the reaper fails that run with "Run lost: no heartbeat from
    worker <the killed worker>", the restarted worker neither adopts nor re-runs it, and the next
    run succeeds."""
    client = signed_in(base_url, "reaper")
    job_id = live_job(client, seconds=30)
    run_id = client.post(f"/api/jobs/{job_id}/run").json()["run_id"]
    until(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "running", 60, "the run to start")
    until(
        lambda: any("Progress" in (e.get("message") or "") for e in client.get(f"/api/runs/{run_id}/events").json()),
        60,
        "the progress asset to work",
    )
    killed_worker = (await run_row(stack, run_id))["worker_id"]
    assert killed_worker
    old = stack.kill_component("pipelines-worker")
    stack.wait_component_ready("pipelines-worker", not_pid=old)

    status = until(
        lambda: (s := client.get(f"/api/runs/{run_id}").json()["status"]) in FINISHED and s, 120, "the reaper"
    )
    events = client.get(f"/api/runs/{run_id}/events").json()
    assert status == "failed", events
    reasons = [e.get("error") or e.get("message") or "" for e in events if e["event_type"] == "run_failed"]
    assert len(reasons) == 1, events
    assert reasons[0].startswith(f"Run lost: no heartbeat from worker {killed_worker}"), reasons
    assert sum(e["event_type"] == "run_started" for e in events) == 1, "the run was executed again"
    assert (await run_row(stack, run_id))["worker_id"] == killed_worker

    quick = client.post(f"/api/jobs/{live_job(client, seconds=0)}/run").json()["run_id"]
    assert (
        until(lambda: (s := client.get(f"/api/runs/{quick}").json()["status"]) in FINISHED and s, 60, "the next run")
        == "success"
    )


def test_postgres_killed_during_a_backfill_then_the_backfill_completes(base_url: str, stack: StackHandle) -> None:
    """kill -9 of PostgreSQL while a backfill's runs execute: once it is back (the launcher
    restarts it), the backfill finishes with every partition's run a success."""
    client = signed_in(base_url, "backfill")
    job_id = live_job(client, seconds=2, partitioned=True)
    r = client.post(
        f"/api/jobs/{job_id}/backfill",
        json={"start_date": "2026-01-01", "end_date": "2026-01-04", "concurrency": 2},
    )
    assert r.status_code in (200, 201), r.text
    backfill_id = r.json()["backfill_id"]
    until(lambda: client.get(f"/api/backfills/{backfill_id}").json()["status"] == "running", 60, "the backfill to run")
    old = stack.kill_component("postgres")
    stack.wait_component_ready("postgres", not_pid=old)

    def finished() -> dict[str, Any] | None:
        response = client.get(f"/api/backfills/{backfill_id}")
        if response.status_code != 200:
            return None  # services reconnecting
        body: dict[str, Any] = response.json()
        return body if body["status"] in FINISHED else None

    backfill = until(finished, 180, "the backfill to finish")
    runs = client.get("/api/runs/", params={"backfill_id": backfill_id}).json()
    assert len(runs) == 4, runs
    failures = {run["id"]: failure_of(client, run["id"]) for run in runs if run["status"] != "success"}
    assert (backfill["status"], sorted(run["status"] for run in runs)) == ("success", ["success"] * 4), failures

    # Every service that reads PostgreSQL answers again: a pooled connection the restart closed
    # costs at most a JSON 503 with Retry-After (never a 500), then the pool has replaced it.
    for path in ("/api/auth/me", "/api/organisations", "/api/agent/sessions", "/api/sources/"):
        refusals: list[httpx.Response] = []

        def answers(path: str = path, refusals: list[httpx.Response] = refusals) -> bool:
            response = client.get(path)
            if response.status_code != 200:
                refusals.append(response)
            return response.status_code == 200

        until(answers, 60, f"{path} to answer again")
        assert all(r.status_code == 503 and "retry-after" in r.headers for r in refusals), [
            (r.status_code, r.text) for r in refusals
        ]


async def test_nats_killed_while_an_invitation_is_mailed_sends_it_exactly_once(
    base_url: str, stack: StackHandle
) -> None:
    """kill -9 of nats-server right after an invitation is created (its event on the way to
    notifications, or its e-mail being sent): after NATS is back the invitee has exactly one
    e-mail, and nothing is left to redeliver (no second one can follow)."""
    owner = signed_in(base_url, "mailer")
    invitee = f"invitee-{uuid.uuid4().hex[:8]}@faults.example"
    r = owner.post("/api/organisations/invite", json={"email": invitee, "role": "viewer"})
    assert r.status_code == 201, r.text
    old = stack.kill_component("nats")
    stack.wait_component_ready("nats", not_pid=old)
    mail_dir = stack.data_dir / "mail"

    def mails() -> list[Path]:
        return [p for p in mail_dir.glob("*.eml") if f"To: {invitee}" in p.read_text(errors="replace")]

    until(mails, 120, f"the e-mail to {invitee}")
    nc = await nats.connect(stack.nats_url(), connect_timeout=5)
    try:
        js = nc.jetstream()

        async def settled() -> bool:
            info = await js.consumer_info("IDENTITY", "notifications-invitations")
            return info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered >= 0

        deadline = time.monotonic() + 120
        while not await settled():
            assert time.monotonic() < deadline, "the invitation event was never acknowledged"
            await asyncio.sleep(0.5)
    finally:
        await nc.close()
    assert len(mails()) == 1, [p.name for p in mails()]
