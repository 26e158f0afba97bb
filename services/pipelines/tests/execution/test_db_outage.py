"""Issue 22 item 1: a short PostgreSQL outage at the end of a run (the server crashes and comes
back a few seconds later, as under the supervisor) must not turn the finished run into "failed".
The worker retries the run's writes through the outage, keeps heartbeating it, and stores its
real outcome and all its events once the database is back; the reaper leaves it alone."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .builders import post, run
from .conftest import Cluster, events_of, wait_for, wait_run

pytestmark = pytest.mark.usefixtures("cluster")


async def live_job(org: Any, base_path: str, seconds: float) -> str:
    """A job of the demo `demo_live` source: its one `progress` asset works for `seconds`, then
    reports one progress event, and the CSV destination writes under `base_path`."""
    destination = await post(
        org.editor,
        "/api/destinations/",
        {"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": base_path}},
    )
    source = await post(
        org.editor,
        "/api/sources/",
        {
            "key": "demo_live",
            "name": "Live",
            "config": {"seconds": seconds, "steps": 1},
            "destination_ids": [destination["id"]],
        },
    )
    job = await post(org.editor, "/api/jobs/", {"name": base_path, "cron": "0 3 * * *", "source_ids": [source["id"]]})
    return str(job["id"])


def csv_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.csv")) if path.exists() else []


async def test_a_run_finishing_during_a_postgres_outage_ends_success_with_all_its_events(
    orgs: Any,
    cluster: Cluster,
    postgres_server: Any,
    engine: AsyncEngine,
    exec_engine: AsyncEngine,
    exec_db: Any,
    exec_data_dir: Path,
) -> None:
    org = await orgs()
    # The same DAG without an outage: the events a successful run of it stores.
    reference = await run(org.editor, await live_job(org, "reference", 0))
    assert await wait_run(org.viewer, reference, ("success", "failed")) == "success"
    expected = Counter(e["event_type"] for e in await events_of(org.viewer, reference))

    run_id = await run(org.editor, await live_job(org, "outage", 3))
    await wait_run(org.viewer, run_id, ("running",))
    await wait_for(lambda: _any_event(org, run_id), 10, what="the run's first events are stored")
    output = exec_data_dir / "demo-output" / str(org.org_id) / "outage"
    try:
        await asyncio.to_thread(postgres_server.stop)  # every connection cut, none accepted
        # The asset works on and its CSV is written: the run ends while the database is down.
        await wait_for(lambda: csv_files(output), 30, what="the run's output, written during the outage")
        await asyncio.sleep(1.0)  # the worker tries to store the outcome (ConnectionRefusedError)
    finally:
        await asyncio.to_thread(postgres_server.start)
        for pool in (exec_engine, engine):  # this process's pooled connections died with the server
            await pool.dispose()

    assert await wait_run(org.viewer, run_id, ("success", "failed", "canceled"), timeout=60) == "success"
    stored = await events_of(org.viewer, run_id)
    assert Counter(e["event_type"] for e in stored) == expected
    assert "Progress: step 1/1 done" in [e["message"] for e in stored]
    assert len({e["id"] for e in stored}) == len(stored)
    # The outage did cover the run's end: its worker retried the writes (and lived on).
    async with exec_db() as s:
        worker_id = await s.scalar(text("SELECT worker_id FROM runs WHERE id = :r"), {"r": uuid.UUID(run_id)})
    worker = cluster.worker_by_pid(int(worker_id.split(":")[1]))
    assert worker.proc is not None and worker.proc.running
    assert "database unavailable" in worker.proc.log_path.read_text(errors="replace")
    # The worker goes on: the next run succeeds.
    after = await run(org.editor, await live_job(org, "after", 0))
    assert await wait_run(org.viewer, after, ("success", "failed")) == "success"


async def _any_event(org: Any, run_id: str) -> bool:
    return bool(await events_of(org.viewer, run_id))
