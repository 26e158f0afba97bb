"""Issue 17: the run trigger and a run's completion in few statements (each is a round trip and
a parse/bind/execute in PostgreSQL), with the same rows and frames as before."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from icp_common.db import unit_of_work
from icp_pipelines.execution import events, plan
from icp_pipelines.execution.events import RunRef
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs.status import RunStatus
from icp_pipelines.worker.worker import Worker

from ..conftest import outbox_rows, table_count
from ..factories import create_destination, create_job, create_standalone_asset


async def test_a_run_trigger_is_two_statements(clients, db, count_queries):
    """The run (with the job's last_run_at) in one statement, its outbox rows and the relay's
    wake-up in another (it was five: SELECT job, INSERT run, INSERT outbox, NOTIFY, UPDATE job)."""
    job = await create_job(clients.editor)
    with count_queries() as counter:
        r = await clients.editor.post(f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-01-02"})
    assert r.status_code == 200, r.text
    assert counter.count == 2, counter.statements
    run_id = r.json()["run_id"]
    run = (await clients.viewer.get(f"/api/runs/{run_id}")).json()
    assert (run["job_id"], run["status"], run["partition_date"]) == (job["id"], "queued", "2024-01-02")
    assert (await clients.viewer.get(f"/api/jobs/{job['id']}")).json()["last_run_at"] is not None
    rows = await outbox_rows(db)
    # The trigger's audit entry (issue 18.3) is written by the same outbox statement.
    audits = [m["payload"] for m in rows if m["subject"].startswith("audit.") and m["payload"]["action"] == "jobs.run"]
    assert [(a["target"], a["outcome"]) for a in audits] == [({"type": "run", "id": r.json()["run_id"]}, "success")]
    frames = [m for m in rows if not m["subject"].startswith("audit.")]
    assert [(m["subject"].rsplit(".", 1)[-1], m["payload"].get("event")) for m in frames] == [
        ("runs", "INSERT"),
        ("queued", None),
    ]
    record = frames[0]["payload"]["record"]
    assert (record["id"], record["job_id"], record["status"]) == (run_id, job["id"], "queued")
    assert frames[1]["payload"]["run_id"] == run_id


async def test_a_trigger_of_another_organisations_job_writes_nothing(clients, db):
    job = await create_job(clients.editor)
    r = await clients.other_org.post(f"/api/jobs/{job['id']}/run")
    assert (r.status_code, r.json()) == (404, {"detail": f"Job {job['id']} not found"})
    assert await table_count(db, "runs") == 0
    assert [
        m for m in await outbox_rows(db) if m["payload"].get("action") != "jobs.create"
    ] == []  # only the job's audit
    assert (await clients.viewer.get(f"/api/jobs/{job['id']}")).json()["last_run_at"] is None


async def test_finishing_a_run_is_three_statements_whatever_its_events(db, world, count_queries):
    """The status, the events (of every shape: with and without asset, error, level) and all
    their frames: one UPDATE, one INSERT, one outbox statement (it was eight); a failure adds one
    SELECT, the job name and first error of its alert event (issue 19.2), in the same outbox statement."""
    async with db() as s:
        run = RunRef.of(await lifecycle.queue_run(s, world.org_a, None, None))
        await lifecycle.dispatch_runs(s, "worker-1", 1)
        assert await lifecycle.start_run(s, run) is not None
    start = datetime.now(UTC)
    values = [
        events.row(run, "run_started", timestamp=start, message="Run started"),
        events.row(
            run, "asset_started", timestamp=start + timedelta(milliseconds=1), asset_id=uuid.uuid4(), asset_key="a"
        ),
        events.row(run, "log", timestamp=start + timedelta(milliseconds=2), message="hi", level="INFO"),
        events.row(run, "asset_failed", timestamp=start + timedelta(milliseconds=3), asset_key="a", error="boom"),
    ]
    async with db() as s:
        with count_queries() as counter:
            assert await lifecycle.finish_run(s, run, status=RunStatus.FAILED, events_before=values)
    assert counter.count == 4, counter.statements
    assert [m["payload"]["error"] for m in await outbox_rows(db, "pipelines.alerts.")] == ["boom"]
    frames = [m["payload"] for m in await outbox_rows(db, "realtime.")]
    finish = frames[-5:]
    assert [(f["table"], f["event"]) for f in finish] == [("events", "INSERT")] * 4 + [("runs", "UPDATE")]
    assert [f["record"]["event_type"] for f in finish[:4]] == ["run_started", "asset_started", "log", "asset_failed"]
    assert [f["record"]["id"] for f in finish[:4]] == [str(v["id"]) for v in values]
    assert finish[1]["record"]["asset_key"] == "a" and finish[0]["record"]["asset_id"] is None
    assert finish[4]["record"]["status"] == "failed"
    assert await table_count(db, "events") == 4


async def test_a_claim_dispatches_and_starts_in_one_transaction(db, world, count_queries):
    """queued -> dispatched -> running: two UPDATEs and one outbox statement with both frames per
    run, in order (it was two transactions: claim, then start, with seven statements)."""
    async with db() as s:
        first = await lifecycle.queue_run(s, world.org_a, None, None)
        second = await lifecycle.queue_run(s, world.org_a, None, None)
    async with db() as s:
        with count_queries() as counter:
            claimed = await lifecycle.claim_runs(s, "worker-1", 4)
    assert counter.count == 3, counter.statements
    assert [(r.id, r.status, r.worker_id) for r in claimed] == [
        (first.id, "running", "worker-1"),
        (second.id, "running", "worker-1"),
    ]
    frames = [m["payload"] for m in await outbox_rows(db, "realtime.")][2:]
    assert [(f["record"]["id"], f["record"]["status"]) for f in frames] == [
        (str(first.id), "dispatched"),
        (str(second.id), "dispatched"),
        (str(first.id), "running"),
        (str(second.id), "running"),
    ]
    assert frames[0]["record"]["started_at"] is None and frames[2]["record"]["started_at"] is not None


async def test_the_worker_reads_a_runs_plan_outside_any_transaction(settings, resources, app):
    """The plan's reads (six or more SELECTs) in autocommit mode: no BEGIN/COMMIT round trips, and
    each statement is its own transaction (in the transaction they had, now() would not move)."""
    worker = Worker(settings, resources, app.state.catalog, app.state.cipher)
    async with unit_of_work(worker.readers) as s:
        first = await s.scalar(text("SELECT now()"))
        await asyncio.sleep(0.01)
        second = await s.scalar(text("SELECT now()"))
    assert second > first


async def test_a_standalone_assets_plan_is_five_statements(clients, db, world, app, count_queries):
    """The worker's plan of a run of a job over a standalone asset with a destination: the job's
    links (one UNION), the asset rows, the asset's slots, destinations and upstream assets (one
    UNION), the destination and its slots. It was eight statements (links two, asset parts three)."""
    destination = await create_destination(clients.admin)
    ping = await create_standalone_asset(clients.admin, destination_ids=[destination["id"]])
    job = await create_job(clients.admin, asset_ids=[ping["id"]])
    run = RunRef(uuid.uuid4(), world.org_a, None, None, uuid.UUID(job["id"]))
    async with db() as s:
        with count_queries() as counter:
            specs = await plan.build(s, app.state.catalog, app.state.cipher, run)
    assert counter.count == 5, counter.statements
    assert [(spec["id"], spec["init"]["destination"]["id"]) for spec in specs] == [(ping["id"], destination["id"])]
    assert "deps" not in specs[0]["init"] and "resources" not in specs[0]["init"]
