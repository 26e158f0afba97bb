"""Failures around the DAG: a worker killed mid-run (heartbeats + reaper), launch errors
(Appendix B 25, a deleted job), and two organisations' concurrent runs kept apart (spec 6.2)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from icp_pipelines.execution import repository as execution_repository
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs import repository as runs_repository

from .builders import asset_job, backfill, demo_job, run
from .conftest import Cluster, events_of, pid_in, process_gone, run_status, wait_for, wait_run

pytestmark = pytest.mark.usefixtures("cluster")


async def test_a_killed_worker_fails_its_run_and_the_backfill_goes_on(
    orgs: Any, cluster: Cluster, exec_db: Any, tmp_path: Path
) -> None:
    org = await orgs()
    config = {"seconds": 60, "slow_on": ["2024-01-01"], "pid_dir": str(tmp_path)}
    job = await asset_job(org.editor, "exec_daily", config, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-02", concurrency=1)
    runs = sorted(
        (await org.viewer.get("/api/runs/", params={"backfill_id": backfill_id})).json(),
        key=lambda r: r["partition_date"],
    )
    first = runs[0]["id"]
    await wait_run(org.viewer, first, ("running",))
    child = await wait_for(lambda: pid_in(tmp_path / "2024-01-01"), 20, what="the asset started")
    await wait_for(lambda: _stored(org.viewer, first, "asset_exec_started"), 5, what="the start is stored")
    async with exec_db() as s:
        worker_id = (
            await s.execute(text("SELECT worker_id FROM runs WHERE id = :r"), {"r": uuid.UUID(first)})
        ).scalar_one()
    victim = cluster.worker_by_pid(int(worker_id.split(":")[1]))
    victim.kill()
    await wait_for(lambda: process_gone(child), 5, what="the run's process dies with its worker")

    assert await wait_run(org.viewer, first, ("failed", "success"), timeout=15) == "failed"
    events = await events_of(org.viewer, first)
    last = events[-1]
    assert last["event_type"] == "run_failed"
    assert last["error"].startswith(f"Run lost: no heartbeat from worker {worker_id} for ")
    assert last["message"] == f"Run failed: {last['error']}"
    executions = (await org.viewer.get(f"/api/runs/{first}/asset-executions")).json()
    assert [(x["asset_key"], x["status"]) for x in executions] == [("exec_daily", "canceled")]
    # The backfill advanced: the next partition ran on the surviving worker.
    assert await wait_run(org.viewer, runs[1]["id"], ("success", "failed")) == "success"
    await wait_for(lambda: _backfill_is(org.viewer, backfill_id, "failed"), 10, what="backfill failed")

    await cluster.remove(victim)
    await cluster.add("worker")


async def _stored(client: Any, run_id: str, event_type: str) -> bool:
    return any(e["event_type"] == event_type for e in await events_of(client, run_id))


async def _backfill_is(client: Any, backfill_id: str, status: str) -> bool:
    return bool((await client.get(f"/api/backfills/{backfill_id}")).json()["status"] == status)


async def test_an_unknown_destination_key_fails_the_run_with_one_event(orgs: Any, exec_db: Any, tmp_path: Path) -> None:
    org = await orgs()
    job, _ = await demo_job(org.editor)
    async with exec_db() as s:
        await s.execute(text("UPDATE destinations SET key = 'gone_destination' WHERE org_id = :o"), {"o": org.org_id})
    run_id = await run(org.editor, job["id"], "2024-03-01")
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"
    events = await events_of(org.viewer, run_id)
    assert [(e["event_type"], e["error"]) for e in events] == [
        ("run_failed", "Unknown destination key: gone_destination")
    ]
    body = (await org.viewer.get(f"/api/runs/{run_id}")).json()
    assert body["started_at"] and body["completed_at"]


async def test_a_run_whose_job_is_gone_fails_at_once(orgs: Any, exec_db: Any) -> None:
    org = await orgs()
    async with exec_db() as s:
        row = await lifecycle.queue_run(s, org.org_id, None, None)
    run_id = str(row.id)
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"
    events = await events_of(org.viewer, run_id)
    assert [(e["event_type"], e["error"]) for e in events] == [("run_failed", "The run's job no longer exists")]


async def test_concurrent_runs_of_two_organisations_keep_their_events_apart(orgs: Any, tmp_path: Path) -> None:
    alpha, beta = await orgs(), await orgs()
    jobs = {
        alpha: await asset_job(alpha.editor, "exec_noisy", {"count": 15}),
        beta: await asset_job(beta.editor, "exec_noisy", {"count": 25}),
    }
    demo, _ = await demo_job(beta.editor)
    runs: dict[str, tuple[Any, int]] = {}
    for _ in range(4):
        for org, count in ((alpha, 15), (beta, 25)):
            runs[await run(org.editor, jobs[org]["id"])] = (org, count)
    demo_run = await run(beta.editor, demo["id"], "2024-04-01")
    await asyncio.gather(*(wait_run(org.viewer, run_id, ("success",)) for run_id, (org, _) in runs.items()))
    assert await wait_run(beta.viewer, demo_run, ("success",)) == "success"

    for run_id, (org, count) in runs.items():
        events = await events_of(org.viewer, run_id)
        assert {(e["run_id"], e["org_id"]) for e in events} == {(run_id, str(org.org_id))}
        logs = [e["message"] for e in events if e["event_type"] == "log"]
        assert logs == [f"line {i}" for i in range(count)]
        # run_started, asset_queued, asset_started, asset_exec_started, logs, asset_exec_completed,
        # asset_completed, run_completed
        assert len(events) == count + 7
        assert {e["asset_id"] for e in events if e["asset_id"]} == {jobs[org]["asset"]["id"]}
        other = beta if org is alpha else alpha
        r = await other.viewer.get(f"/api/runs/{run_id}/events")
        assert r.status_code == 404
    assert len(await events_of(beta.viewer, demo_run)) == 1 + 4 + 6 + 8 + 6 + 8 + 1


async def test_retry_failed_of_a_backfill_without_job_is_refused(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_daily", {"fail_on": ["2024-01-01"]}, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-01")
    await wait_for(lambda: _backfill_is(org.viewer, backfill_id, "failed"), 20, what="backfill failed")
    r = await org.editor.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 200
    r = await org.editor.post(f"/api/backfills/{backfill_id}/retry-failed")
    assert (r.status_code, r.json()) == (
        409,
        {"detail": f"Backfill {backfill_id} has no job any more (it was deleted)"},
    )


async def test_a_killed_run_process_fails_the_run_and_is_replaced(orgs: Any, tmp_path: Path) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_slow", {"seconds": 60, "pid_dir": str(tmp_path)})
    run_id = await run(org.editor, job["id"])
    pid = await wait_for(lambda: pid_in(tmp_path / "slow"), 20, what="the asset started")
    await wait_for(lambda: _stored(org.viewer, run_id, "asset_exec_started"), 5, what="the start is stored")
    os.kill(pid, signal.SIGKILL)
    assert await wait_run(org.viewer, run_id, ("failed", "success"), timeout=10) == "failed"
    events = await events_of(org.viewer, run_id)
    assert [(e["event_type"], e["error"]) for e in events[-2:]] == [
        ("asset_canceled", None),
        ("run_failed", "Run process exited unexpectedly (killed by SIGKILL)"),
    ]
    assert events[-2]["message"] == "Asset 'exec_slow' canceled (run process ended)"
    quick = await asset_job(org.editor, "exec_daily", {}, partitioned=True)
    for day in ("2024-06-01", "2024-06-02", "2024-06-03", "2024-06-04"):  # every child works
        assert await wait_run(org.viewer, await run(org.editor, quick["id"], day), ("success",)) == "success"


async def test_launch_errors_advance_the_backfill(orgs: Any, exec_db: Any, tmp_path: Path) -> None:
    org = await orgs()
    job, _ = await demo_job(org.editor)
    async with exec_db() as s:
        await s.execute(text("UPDATE sources SET key = 'gone_source' WHERE org_id = :o"), {"o": org.org_id})
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-03", concurrency=1)
    await wait_for(lambda: _backfill_is(org.viewer, backfill_id, "failed"), 20, what="backfill failed")
    runs = (await org.viewer.get("/api/runs/", params={"backfill_id": backfill_id})).json()
    assert sorted(r["status"] for r in runs) == ["failed"] * 3
    for r in runs:
        events = await events_of(org.viewer, r["id"])
        assert [(e["event_type"], e["error"]) for e in events] == [("run_failed", "Unknown source key: gone_source")]


async def test_a_run_stuck_in_dispatched_is_failed_by_the_reaper(orgs: Any, exec_db: Any) -> None:
    """Measured from the dispatch (not the creation), and only while it is still dispatched."""
    org = await orgs()
    async with exec_db() as s:
        values = runs_repository.run_values(org.org_id, None, status="dispatched")
        stuck, fresh = await runs_repository.add_many(s, [values, values])  # as a worker left them
        await s.execute(
            text(
                "UPDATE runs SET created_at = now() - interval '1 day', heartbeat_at = now() + interval '1 hour', "
                "dispatched_at = CASE WHEN id = :stuck THEN now() - interval '2 minutes' ELSE now() END"
            ),
            {"stuck": stuck.id},
        )
    async with exec_db() as s:
        lost = await execution_repository.lost_runs(s, heartbeat_timeout=30, dispatch_timeout=60, limit=10)
    assert [(r.id, r.reason) for r in lost] == [(stuck.id, "Run timed out after 60s (still 'dispatched')")]
    async with exec_db() as s:
        assert await lifecycle.reap_run(s, lost[0])
    async with exec_db() as s:
        assert not await lifecycle.reap_run(s, lost[0])  # once
    events = await events_of(org.viewer, str(stuck.id))
    assert [(e["event_type"], e["error"]) for e in events] == [
        ("run_failed", "Run timed out after 60s (still 'dispatched')")
    ]
    assert await run_status(org.viewer, str(stuck.id)) == "failed"
    assert await run_status(org.viewer, str(fresh.id)) == "dispatched"
    async with exec_db() as s:
        await s.execute(text("DELETE FROM runs WHERE id = :r"), {"r": fresh.id})


async def test_run_processes_are_reused_within_an_organisation_only(orgs: Any, tmp_path: Path) -> None:
    alpha, beta = await orgs(), await orgs()
    pids: dict[str, set[int]] = {}
    for name, org in (("alpha", alpha), ("beta", beta), ("alpha-again", alpha)):
        directory = tmp_path / name
        job = await asset_job(org.editor, "exec_daily", {"pid_dir": str(directory)}, partitioned=True)
        days = [f"2024-07-0{d}" for d in range(1, 7)]
        for day in days:
            assert await wait_run(org.viewer, await run(org.editor, job["id"], day), ("success",)) == "success"
        pids[name] = {pid_in(directory / day) or 0 for day in days}
    assert len(pids["alpha"]) < 6  # reused for several runs
    assert not (pids["alpha"] | pids["alpha-again"]) & pids["beta"]  # never for another organisation
