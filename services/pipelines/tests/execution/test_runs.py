"""Runs executed by real worker processes (spec 6.1, 6.2, Appendix B 24-26)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from .builders import asset_job, demo_job, run
from .conftest import events_of, wait_for, wait_run

pytestmark = pytest.mark.usefixtures("cluster")


def _by_asset(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    per: dict[str, list[str]] = {}
    for e in events:
        if e["asset_key"]:
            per.setdefault(e["asset_key"], []).append(e["event_type"])
    return per


async def test_a_demo_job_runs_to_success_with_the_event_sequence(orgs: Any, exec_data_dir: Path) -> None:
    org = await orgs()
    job, source = await demo_job(org.editor)
    run_id = await run(org.editor, job["id"], "2024-03-01")
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"

    body = (await org.viewer.get(f"/api/runs/{run_id}")).json()
    assert body["started_at"] and body["completed_at"] and body["partition_date"] == "2024-03-01"
    events = await events_of(org.viewer, run_id)
    assert {e["run_id"] for e in events} == {run_id} and {e["org_id"] for e in events} == {str(org.org_id)}
    first, last = events[0], events[-1]
    assert (first["event_type"], first["message"], first["partition_or_window"]) == (
        "run_started",
        "Run started (4 assets)",
        "2024-03-01",
    )
    assert (last["event_type"], last["message"]) == ("run_completed", "Run completed (4/4 succeeded)")
    assert [e["event_type"] for e in events[1:5]] == ["asset_queued"] * 4
    per = _by_asset(events)
    written = ["asset_exec_started", "asset_exec_completed", "dest_write_started", "dest_write_completed"]
    read = ["dest_read_started", "dest_read_completed"]
    assert per["events"] == ["asset_queued", "asset_started", *written, "asset_completed"]
    assert per["daily_summary"] == ["asset_queued", "asset_started", *read, *written, "asset_completed"]
    assert per["user_report"] == ["asset_queued", "asset_started", *read, *written, "asset_completed"]
    messages = {(e["event_type"], e["asset_key"]): e["message"] for e in events if e["asset_key"]}
    assert messages[("asset_started", "events")] == "Asset 'events' started"
    assert messages[("dest_read_started", "daily_summary")] == "Reading 'events'"
    assert messages[("asset_exec_started", "daily_summary")] == "Executing 'daily_summary'"
    assert messages[("dest_write_completed", "daily_summary")] == "Wrote 'daily_summary'"
    assert messages[("asset_completed", "user_report")] == "Asset 'user_report' completed"
    ids = {a["key"]: a["id"] for a in source["assets"]}
    assert {e["asset_id"] for e in events if e["asset_key"]} == set(ids.values())

    executions = (await org.viewer.get(f"/api/runs/{run_id}/asset-executions")).json()
    assert sorted((x["asset_key"], x["status"]) for x in executions) == [
        ("daily_summary", "success"),
        ("events", "success"),
        ("user_report", "success"),
        ("users", "success"),
    ]
    out = exec_data_dir / "demo-output" / str(org.org_id) / "out"  # the organisation's own directory
    assert (out / "demo_source" / "daily_summary" / "date=2024-03-01" / "data.csv").exists()
    job_now = (await org.viewer.get(f"/api/jobs/{job['id']}")).json()
    assert job_now["last_run_at"] is not None


async def test_an_unpartitioned_run_of_partitioned_assets_fails_and_cancels_downstream(
    orgs: Any, tmp_path: Path
) -> None:
    org = await orgs()
    job, _ = await demo_job(org.editor)
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"
    events = await events_of(org.viewer, run_id)
    error = "Asset 'events' is partitioned, but no partition/partition_window provided"
    failed = [e for e in events if e["event_type"] == "asset_failed"]
    assert [(e["asset_key"], e["error"]) for e in failed] == [("events", error)]
    assert failed[0]["message"] == f"Asset 'events' failed: {error}"
    canceled = [e for e in events if e["event_type"] == "asset_canceled"]
    assert ("daily_summary", "Asset 'daily_summary' canceled (upstream failure)") in [
        (e["asset_key"], e["message"]) for e in canceled
    ]
    assert events[-1]["event_type"] == "run_failed"
    executions = {
        x["asset_key"]: x["status"] for x in (await org.viewer.get(f"/api/runs/{run_id}/asset-executions")).json()
    }
    assert executions["events"] == "failed" and executions["daily_summary"] == "canceled"


async def test_user_logs_and_stdout_of_the_run(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_noisy", {"count": 3})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    logs = [e for e in await events_of(org.viewer, run_id) if e["event_type"] == "log"]
    assert [(e["message"], e["asset_key"], e["asset_id"]) for e in logs] == [
        (f"line {i}", "exec_noisy", None) for i in range(3)
    ]


async def pickups(exec_db: Any, run_ids: list[str]) -> list[float]:
    async with exec_db() as s:
        rows = await s.execute(
            text("SELECT extract(epoch FROM dispatched_at - created_at) FROM runs WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(r) for r in run_ids]},
        )
        return [float(r[0]) for r in rows.all()]


async def test_workers_are_woken_through_nats_and_the_sweep_covers_an_outage(
    orgs: Any, exec_db: Any, nats_server: Any
) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "demo_ping")
    quick = []
    for _ in range(5):
        quick.append(await run(org.editor, job["id"]))
        await wait_run(org.viewer, quick[-1], ("success",))
    # The sweep runs every 5 s in these tests: pickups this fast are the NATS wake-up.
    assert sorted(await pickups(exec_db, quick))[2] < 1.0

    nats_server.stop()
    try:
        during = await run(org.editor, job["id"])
        assert await wait_run(org.viewer, during, ("success",), timeout=15) == "success"
    finally:
        nats_server.start()

    async def woken_again() -> bool:
        # Clients reconnect within a second; a relay that backed off retries within 5 s.
        after = await run(org.editor, job["id"])
        await wait_run(org.viewer, after, ("success",))
        return (await pickups(exec_db, [after]))[0] < 1.0

    await wait_for(woken_again, 20, interval=0.5, what="pickups through NATS again")


async def test_workers_and_schedulers_export_metrics(orgs: Any, cluster: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "demo_ping")
    await wait_run(org.viewer, await run(org.editor, job["id"]), ("success",))
    async with httpx.AsyncClient(timeout=10) as client:
        workers = [(await client.get(f"http://127.0.0.1:{w.port}/metrics")).text for w in cluster.workers]
        schedulers = [(await client.get(f"http://127.0.0.1:{s.port}/metrics")).text for s in cluster.schedulers]
    assert all("icp_pipelines_run_pickup_seconds_bucket" in text for text in workers)
    assert any('icp_pipelines_runs_finished_total{status="success"}' in text for text in workers)
    assert sum("icp_pipelines_scheduler_leader 1.0" in text for text in schedulers) == 1


async def test_upstream_assets_outside_the_job_are_read_from_their_destination(orgs: Any, tmp_path: Path) -> None:
    org = await orgs()
    producer, source = await demo_job(org.editor, cron="0 3 * * *")
    events_id = next(a["id"] for a in source["assets"] if a["key"] == "events")
    assert await wait_run(org.viewer, await run(org.editor, producer["id"], "2024-08-01"), ("success",)) == "success"

    consumer = await asset_job(org.editor, "exec_reader", partitioned=True)
    r = await org.editor.post(
        f"/api/assets/{consumer['asset']['id']}/dependencies",
        json={"upstream_asset_id": events_id, "param_name": "events"},
    )
    assert r.status_code == 201, r.text
    run_id = await run(org.editor, consumer["id"], "2024-08-01")
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    events = await events_of(org.viewer, run_id)
    assert events[0]["message"] == "Run started (2 assets)"  # the reader and its upstream
    assert {e["asset_key"] for e in events if e["asset_key"]} == {"exec_reader"}  # the upstream is not run
    messages = [(e["event_type"], e["message"]) for e in events if e["asset_key"]]
    assert ("dest_read_completed", "Read 'events'") in messages
    assert ("log", "read 5 rows") in messages  # rows_per_day of the demo config
