"""Run execution end to end, through Traefik and the gateway, with the stack's own scheduler and
worker processes: a demo job runs to success (events, asset executions, WebSocket order),
fail_fast then retry-failed after a fix, cancel routes, tenant scoping, OpenAPI.

The stack runs the project's demo catalog (icp_pipelines.demo): INTERLOPER_CATALOG is set here,
before any stack starts, unless already set (as in test_pipelines.py)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))

FINISHED = ("success", "failed", "canceled")


def sign_in(client: httpx.Client, email: str, org: str) -> dict[str, Any]:
    r = client.get("/api/auth/dev-login", params={"email": email}, follow_redirects=False)
    assert r.status_code == 302, r.text
    r = client.post("/api/organisations", json={"name": org})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def until(probe: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {value!r}")


def demo_job(client: httpx.Client, base_path: str = "out") -> tuple[dict[str, Any], dict[str, Any]]:
    """A demo source with a CSV destination under `base_path` (inside the organisation's directory),
    in a partitioned job: (job, destination)."""
    config = client.post(
        "/api/resources/", json={"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": "hi"}}
    ).json()
    destination = client.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": base_path}}
    ).json()
    r = client.post(
        "/api/sources/",
        json={
            "key": "demo_source",
            "name": "Demo",
            "resources": {"config": config["id"]},
            "destination_ids": [destination["id"]],
        },
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/api/jobs/",
        json={"name": "daily", "cron": "0 4 * * *", "source_ids": [r.json()["id"]], "partitioned": True},
    )
    assert r.status_code == 200, r.text
    return r.json(), destination


def run_status(client: httpx.Client, run_id: str) -> str:
    status: str = client.get(f"/api/runs/{run_id}").json()["status"]
    return status


def finished_run(client: httpx.Client, run_id: str) -> str:
    result: str = until(lambda: (s := run_status(client, run_id)) in FINISHED and s, 30, f"run {run_id}")
    return result


def finished_backfill(client: httpx.Client, backfill_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/backfills/{backfill_id}").json()
        return body if body["status"] in FINISHED else None

    result: dict[str, Any] = until(probe, 60, f"backfill {backfill_id}")
    return result


async def test_a_demo_job_runs_through_the_stack_and_its_changes_reach_the_websocket(
    base_url: str, tmp_path: Path
) -> None:
    import websockets

    suffix = uuid.uuid4().hex[:8]
    erin = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True)
    try:
        await asyncio.to_thread(sign_in, erin, f"erin-{suffix}@example.com", "Erin Co")
        job, _ = await asyncio.to_thread(demo_job, erin)
        ws_url = base_url.replace("http://", "ws://") + "/api/ws"
        cookie = f"session_token={erin.cookies['session_token']}"
        async with websockets.connect(ws_url, additional_headers={"Cookie": cookie}) as ws:
            await asyncio.sleep(0.5)  # the relay subscribes with deliver-new
            r = await asyncio.to_thread(erin.post, f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-05-01"})
            run_id = r.json()["run_id"]
            seen: list[tuple[str, str, str]] = []
            async with asyncio.timeout(30):
                while not seen or seen[-1][2] not in FINISHED:
                    message = json.loads(await ws.recv())
                    record = message["record"]
                    if message["table"] == "runs" and record["id"] == run_id:
                        seen.append(("runs", message["event"], record["status"]))
                    elif message["table"] == "events" and record["run_id"] == run_id:
                        seen.append(("events", message["event"], record["event_type"]))
        runs = [s[2] for s in seen if s[0] == "runs"]
        assert runs == ["queued", "dispatched", "running", "success"]
        events = [s[2] for s in seen if s[0] == "events"]
        # Every event was published, in order, before the run's final status.
        assert events[0] == "run_started" and events[-1] == "run_completed" and len(events) == 34
        assert seen.index(("events", "INSERT", "run_completed")) < seen.index(("runs", "UPDATE", "success"))
        stored = (await asyncio.to_thread(erin.get, f"/api/runs/{run_id}/events")).json()
        assert [e["event_type"] for e in stored] == events
        executions = (await asyncio.to_thread(erin.get, f"/api/runs/{run_id}/asset-executions")).json()
        assert sorted(x["status"] for x in executions) == ["success"] * 4
    finally:
        await asyncio.to_thread(erin.close)


def test_fail_fast_then_retry_failed_after_a_fix(base_url: str, stack: StackHandle) -> None:
    suffix = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True) as frank:
        org = sign_in(frank, f"frank-{suffix}@example.com", "Frank Co")
        # The organisation's own demo output directory (issue 15 #9), with a file in the way.
        root = stack.data_dir / "demo-output" / org["id"]
        root.mkdir(parents=True)
        (root / "not-a-directory").write_text("the CSV destination cannot write under a file")
        job, destination = demo_job(frank, "not-a-directory")
        r = frank.post(
            f"/api/jobs/{job['id']}/backfill",
            json={"start_date": "2024-01-01", "end_date": "2024-01-03", "concurrency": 1, "fail_fast": True},
        )
        backfill_id = r.json()["backfill_id"]
        assert finished_backfill(frank, backfill_id)["status"] == "failed"
        runs = sorted(frank.get(f"/api/runs?backfill_id={backfill_id}").json(), key=lambda x: x["partition_date"])
        assert [x["status"] for x in runs] == ["failed", "canceled", "canceled"]
        failed = frank.get(f"/api/runs/{runs[0]['id']}/events").json()
        assert any(e["event_type"] == "dest_write_failed" for e in failed)
        assert failed[-1]["event_type"] == "run_failed"

        r = frank.put(
            f"/api/destinations/{destination['id']}",
            json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "out"}},
        )
        assert r.status_code == 200, r.text
        r = frank.post(f"/api/backfills/{backfill_id}/retry-failed")
        assert r.status_code == 200 and r.json()["status"] == "running"
        assert finished_backfill(frank, backfill_id)["status"] == "success"
        after = frank.get(f"/api/runs?backfill_id={backfill_id}").json()
        assert len(after) == 6 and sum(x["status"] == "success" for x in after) == 3
        assert (root / "out" / "demo_source" / "daily_summary" / "date=2024-01-03" / "data.csv").exists()


def test_cancel_routes_through_the_gateway(base_url: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    with (
        httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True) as gina,
        httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=True) as hank,
    ):
        sign_in(gina, f"gina-{suffix}@example.com", "Gina Co")
        sign_in(hank, f"hank-{suffix}@example.com", "Hank Co")
        job, _ = demo_job(gina)
        r = gina.post(
            f"/api/jobs/{job['id']}/backfill",
            json={"start_date": "2023-01-01", "end_date": "2023-03-31", "concurrency": 1},
        )
        backfill_id = r.json()["backfill_id"]
        runs = sorted(gina.get(f"/api/runs?backfill_id={backfill_id}").json(), key=lambda x: x["partition_date"])
        last = runs[-1]["id"]
        r = hank.post(f"/api/runs/{last}/cancel")
        assert (r.status_code, r.json()) == (404, {"detail": f"Run {last} not found"})
        r = hank.post(f"/api/backfills/{backfill_id}/cancel")
        assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {backfill_id} not found"})
        r = gina.post(f"/api/runs/{last}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"

        r = gina.post(f"/api/backfills/{backfill_id}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "canceled"
        statuses = {x["status"] for x in gina.get(f"/api/runs?backfill_id={backfill_id}").json()}
        assert statuses <= {"success", "canceled"} and "canceled" in statuses
        r = gina.post(f"/api/backfills/{backfill_id}/cancel")
        assert (r.status_code, r.json()) == (409, {"detail": f"Backfill {backfill_id} is already canceled"})
        r = gina.post(f"/api/backfills/{backfill_id}/retry-failed")  # canceled partitions run again
        assert r.status_code == 200
        r = gina.post(f"/api/backfills/{backfill_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"

        spec = gina.get("/api/openapi.json").json()
        for path in (
            "/api/runs/{run_id}/cancel",
            "/api/backfills/{backfill_id}/cancel",
            "/api/backfills/{backfill_id}/retry-failed",
        ):
            operation = spec["paths"][path]["post"]
            assert {"200", "404", "409"} <= set(operation["responses"]), path
