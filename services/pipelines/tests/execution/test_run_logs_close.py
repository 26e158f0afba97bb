"""A run's logs closing while a batch is being stored (found by tests-e2e/test_replicas.py: under
load, the first lines of some runs were missing): the batch is stored, not dropped."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from icp_pipelines.execution.events import RunRef
from icp_pipelines.execution.logs import RunLogs

from .conftest import wait_for


async def test_a_batch_being_stored_when_the_logs_close_is_kept(
    exec_engine: AsyncEngine, exec_sessions: async_sessionmaker[AsyncSession]
) -> None:
    org_id = uuid.uuid4()
    async with exec_engine.begin() as conn:
        run_id = (
            await conn.execute(
                text("INSERT INTO runs (org_id, status) VALUES (:o, 'running') RETURNING id"), {"o": org_id}
            )
        ).scalar_one()
    logs = RunLogs(RunRef(run_id, org_id, None), exec_sessions, flush_interval=0.01)

    async def waiting_inserts() -> bool:
        async with exec_engine.connect() as conn:
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO run_logs%'"
                )
            )
        return bool(waiting)

    async with exec_engine.connect() as blocker:
        # The run row locked FOR UPDATE: the periodic flush's INSERT waits on its foreign-key check.
        await blocker.execute(text("SELECT 1 FROM runs WHERE id = :r FOR UPDATE"), {"r": run_id})
        logs.start()
        logs.add("stdout", "first line")
        await wait_for(waiting_inserts, 10, what="the periodic flush storing the first line")
        closing = asyncio.create_task(logs.close("the end"))  # as the run ends: cancels the periodic flush
        await asyncio.sleep(0.1)
        await blocker.rollback()
    await asyncio.wait_for(closing, 10)

    async with exec_engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT message FROM run_logs WHERE run_id = :r ORDER BY seq"), {"r": run_id})
        ).scalars()
        assert list(stored) == ["first line", "the end"]
