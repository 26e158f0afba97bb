"""The worker's id-list statements (heartbeat, status look-up, transitions) keep one statement
text whatever the number of ids: each new IN-list length used to be one more prepared statement
on the pooled backend, whose memory grew with every new batch size (`make soak`)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.db import create_engine
from icp_pipelines.execution import repository
from icp_pipelines.runs.status import RunStatus


async def test_id_lists_of_every_size_share_one_prepared_statement(exec_database_url: str) -> None:
    engine = create_engine(exec_database_url, pool_size=1)  # a backend of its own: no other test's statements
    async with engine.connect() as conn:
        session = AsyncSession(bind=conn)
        for size in range(1, 7):
            ids = [uuid.uuid4() for _ in range(size)]
            await repository.heartbeat(session, ids)
            await repository.statuses(session, ids)
            await repository.transition(
                session, ids, from_statuses=[RunStatus.RUNNING], values={"status": RunStatus.CANCELED}
            )
        # (patterns split so that this query, prepared too, does not match itself)
        counts = [
            (
                await conn.execute(text(f"SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE {p}"))
            ).scalar_one()
            for p in (
                "'UPDATE runs SET heart' || '%'",
                "'SELECT runs.id, runs.sta' || '%'",
                "'UPDATE runs SET stat' || '%'",
            )
        ]
        await conn.rollback()
    await engine.dispose()
    assert counts == [1, 1, 1]
