"""The scheduler processes: cron (spec 6.4 with the fixes of 12.2 #21) and leader election."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from icp_pipelines.jobs.models import Job
from icp_pipelines.scheduler.leader import LOCK_KEY

from .builders import asset_job, demo_job, post
from .conftest import Cluster, wait_for

pytestmark = pytest.mark.usefixtures("cluster")

EVERY_MINUTE = "* * * * *"


async def make_due(exec_db: Any, job_id: str) -> None:
    """Crons have minute resolution: make the job's next tick now instead of waiting for it."""
    async with exec_db() as s:
        await s.execute(text("UPDATE jobs SET next_run_at = now() WHERE id = :j"), {"j": uuid.UUID(job_id)})


async def ticks(exec_db: Any, job_id: str, count: int) -> list[Any]:
    """Fire `count` ticks of the job one after the other; returns its runs."""
    rows = await job_runs(exec_db, job_id)
    for _ in range(count):
        await make_due(exec_db, job_id)
        expected = len(rows) + 1
        rows = await wait_for(lambda n=expected: _at_least(exec_db, job_id, n), 10, what=f"cron tick {expected}")
    return rows


async def job_runs(exec_db: Any, job_id: str) -> list[Any]:
    async with exec_db() as s:
        rows = await s.execute(
            text("SELECT id, status, created_at, backfill_id FROM runs WHERE job_id = :j ORDER BY created_at"),
            {"j": uuid.UUID(job_id)},
        )
        return list(rows.all())


async def test_cron_creates_runs_and_a_changed_cron_takes_effect(orgs: Any, exec_db: Any, tmp_path: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "demo_ping", None, cron=EVERY_MINUTE)
    # Jobs with an invalid cron (written before validation existed; a 6-field one fired at every
    # scheduler cycle) are due first: they must not block the others, nor fire.
    async with exec_db() as s:
        for name, cron in (("legacy", "not a cron"), ("legacy-seconds", "* * * * * *")):
            s.add(
                Job(org_id=org.org_id, name=name, cron=cron, enabled=True, next_run_at=datetime(2020, 1, 1, tzinfo=UTC))
            )
    found = await ticks(exec_db, job["id"], 2)
    assert len(found) == 2
    await wait_for(lambda: _all_success(exec_db, job["id"], len(found)), 20, what="the cron runs succeed")
    body = (await org.viewer.get(f"/api/jobs/{job['id']}")).json()
    assert body["last_run_at"] is not None
    assert datetime.fromisoformat(body["next_run_at"]) > datetime.fromisoformat(body["last_run_at"]) - timedelta(
        seconds=1
    )
    async with exec_db() as s:
        legacy = (await s.execute(text("SELECT next_run_at FROM jobs WHERE name LIKE 'legacy%'"))).scalars().all()
        legacy_runs = (
            await s.execute(
                text("SELECT count(*) FROM runs r JOIN jobs j ON j.id = r.job_id WHERE j.name LIKE 'legacy%'")
            )
        ).scalar_one()
    assert legacy == [None, None] and legacy_runs == 0  # unscheduled until their cron is fixed

    # A new cron applies at once: the next tick is the new expression's (years away), no more runs.
    r = await org.editor.put(f"/api/jobs/{job['id']}", json={"name": job["name"], "cron": "0 0 1 1 *"})
    assert r.status_code == 200
    assert r.json()["next_run_at"].startswith(f"{datetime.now(UTC).year + 1}-01-01")
    await asyncio.sleep(0.5)  # a tick being fired when the cron changed lands now
    settled = len(await job_runs(exec_db, job["id"]))
    await asyncio.sleep(1.5)
    assert len(await job_runs(exec_db, job["id"])) == settled


async def _at_least(exec_db: Any, job_id: str, count: int) -> list[Any] | None:
    rows = await job_runs(exec_db, job_id)
    return rows if len(rows) >= count else None


async def _all_success(exec_db: Any, job_id: str, count: int) -> bool:
    rows = (await job_runs(exec_db, job_id))[:count]
    return all(r.status == "success" for r in rows)


async def test_a_partitioned_cron_job_gets_a_backfill_of_its_last_days(orgs: Any, exec_db: Any, tmp_path: Any) -> None:
    org = await orgs()
    job, _ = await demo_job(org.editor, cron=EVERY_MINUTE, backfill_days=2)
    await make_due(exec_db, job["id"])
    rows = await wait_for(lambda: _at_least(exec_db, job["id"], 2), 10, what="a cron backfill")
    backfill_id = rows[0].backfill_id
    assert backfill_id is not None
    r = await org.editor.put(f"/api/jobs/{job['id']}", json={"name": "demo", "cron": "0 0 1 1 *"})
    assert r.status_code == 200
    backfill = (await org.viewer.get(f"/api/backfills/{backfill_id}")).json()
    today = datetime.now(UTC).date()
    assert (backfill["start_date"], backfill["end_date"]) == (
        str(today - timedelta(days=2)),
        str(today - timedelta(days=1)),
    )
    assert backfill["concurrency"] == 1 and backfill["partitions"] == 2

    async def finished() -> bool:
        body = (await org.viewer.get(f"/api/backfills/{backfill_id}")).json()
        return bool(body["status"] == "success")

    await wait_for(finished, 20, what="the cron backfill succeeds")


async def leader_pid(exec_db: Any) -> int | None:
    async with exec_db() as s:
        name = (
            await s.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.objid = :key AND l.granted"
                ),
                {"key": LOCK_KEY},
            )
        ).scalar_one_or_none()
    return int(name.rsplit(":", 1)[1]) if name else None


async def test_two_schedulers_never_double_fire_and_a_standby_takes_over(
    orgs: Any, cluster: Cluster, exec_db: Any
) -> None:
    second = await cluster.add("scheduler")
    org = await orgs()
    job = await post(
        org.editor, "/api/jobs/", {"name": "tick", "cron": EVERY_MINUTE, "enabled": True}
    )  # no sources: each run succeeds at once
    await ticks(exec_db, job["id"], 3)
    leader = await leader_pid(exec_db)
    assert leader in {p.pid for p in cluster.schedulers}
    victim = next(p for p in cluster.schedulers if p.pid == leader)
    victim.kill()
    await ticks(exec_db, job["id"], 3)
    new_leader = await leader_pid(exec_db)
    assert new_leader is not None and new_leader != leader
    await org.editor.put(f"/api/jobs/{job['id']}", json={"name": "tick", "cron": "0 0 1 1 *"})

    assert len(await job_runs(exec_db, job["id"])) == 6  # one run per tick, never two
    await cluster.remove(victim)  # the survivor stays the cluster's scheduler
    assert second in cluster.schedulers or victim is second


async def test_a_frozen_leader_loses_the_lead_to_a_standby(orgs: Any, cluster: Cluster, exec_db: Any) -> None:
    """A leader that stops without closing its connection (SIGSTOP here; a lost node or network
    alike) held the lock for as long as PostgreSQL kept its session: no cron, no reaper. Its
    session now ends after the leader's idle timeout (5 s with this cluster's 0.5 s checks), a
    standby leads, and the frozen one steps down when it wakes up."""
    second = await cluster.add("scheduler")
    leader = await wait_for(lambda: leader_pid(exec_db), 10, what="a scheduler leader")
    assert leader in {p.pid for p in cluster.schedulers}
    os.kill(leader, signal.SIGSTOP)
    try:

        async def another() -> int | None:
            pid = await leader_pid(exec_db)
            return pid if pid not in (None, leader) else None

        successor = await wait_for(another, 30, what="a standby taking the lead from the frozen leader")
    finally:
        os.kill(leader, signal.SIGCONT)
    org = await orgs()
    job = await post(org.editor, "/api/jobs/", {"name": "tick", "cron": EVERY_MINUTE, "enabled": True})
    await ticks(exec_db, job["id"], 2)  # the new leader fires; the woken one does not take over
    assert await leader_pid(exec_db) == successor
    assert len(await job_runs(exec_db, job["id"])) == 2
    await org.editor.put(f"/api/jobs/{job['id']}", json={"name": "tick", "cron": "0 0 1 1 *"})
    await cluster.remove(second)
