"""Queries on `runs`, `events` and the `asset_executions` view (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Date, String, Uuid, bindparam, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..execution.events import EventRow
from ..jobs.models import Job
from .models import Event, Run, asset_executions


async def get(session: AsyncSession, org_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
    stmt = select(Run).where(Run.org_id == org_id, Run.id == run_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def exists(session: AsyncSession, org_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    stmt = select(Run.id).where(Run.org_id == org_id, Run.id == run_id)
    return (await session.execute(stmt)).first() is not None


async def list_for_org(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    job_id: uuid.UUID | None = None,
    backfill_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[Run]:
    stmt = select(Run).where(Run.org_id == org_id)
    if job_id is not None:
        stmt = stmt.where(Run.job_id == job_id)
    if backfill_id is not None:
        stmt = stmt.where(Run.backfill_id == backfill_id)
    if status is not None:
        stmt = stmt.where(Run.status == status)
    stmt = stmt.order_by(Run.created_at.desc(), Run.id.desc()).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.execute(stmt)).scalars())


async def add_many(session: AsyncSession, values: Sequence[dict[str, Any]]) -> list[Run]:
    """Insert runs (one statement) and return them with every column, in the given order."""
    if not values:
        return []
    stmt = insert(Run).returning(Run, sort_by_parameter_order=True)
    return list((await session.execute(stmt, list(values))).scalars())


def _add_for_job() -> Any:
    """Built once (constructing it was a quarter of the trigger's CPU): bound parameters only."""
    job = (
        update(Job)
        .where(Job.org_id == bindparam("v_org_id", type_=Uuid), Job.id == bindparam("v_job_id", type_=Uuid))
        .values(last_run_at=func.now())
        .returning(Job.id)
        .cte("marked_job")
    )
    row = select(
        job.c.id,
        bindparam("v_org_id", type_=Uuid),
        bindparam("v_status", type_=String),
        bindparam("v_partition_date", type_=Date),
        bindparam("v_backfill_id", type_=Uuid),
    )
    columns = ["job_id", "org_id", "status", "partition_date", "backfill_id"]
    return select(Run).from_statement(insert(Run).from_select(columns, row).returning(*Run.__table__.c))


ADD_FOR_JOB = _add_for_job()


async def add_for_job(session: AsyncSession, values: dict[str, Any]) -> Run | None:
    """Insert one run of `values["job_id"]` (values from `run_values`) and mark the job run
    (`last_run_at = now()`) in one statement (the run trigger's round trips); None, and nothing
    written, if the organisation has no such job. The job's row is locked first (as the mark
    did), then the run references it."""
    # Parameter names unlike the columns': an UPDATE would take a column's name as a SET value.
    params = {f"v_{k}": values[k] for k in ("org_id", "job_id", "status", "partition_date", "backfill_id")}
    return (await session.execute(ADD_FOR_JOB, params)).scalar_one_or_none()


async def events(
    session: AsyncSession,
    org_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    limit: int | None,
    after: tuple[Any, int] | None = None,
) -> list[Event]:
    stmt = select(Event).where(Event.org_id == org_id, Event.run_id == run_id)
    if after is not None:
        stmt = stmt.where(tuple_(Event.timestamp, Event.seq) > tuple_(*after))
    stmt = stmt.order_by(Event.timestamp, Event.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.execute(stmt)).scalars())


async def event_position(
    session: AsyncSession, org_id: uuid.UUID, run_id: uuid.UUID, event_id: uuid.UUID
) -> tuple[Any, int] | None:
    stmt = select(Event.timestamp, Event.seq).where(
        Event.org_id == org_id, Event.run_id == run_id, Event.id == event_id
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


# Built once (the worker stores every run's events with it).
ADD_EVENTS = (
    pg_insert(Event)
    .on_conflict_do_nothing(index_elements=[Event.id])
    .returning(Event)
    .execution_options(render_nulls=True)
)


async def add_events(session: AsyncSession, values: Sequence[EventRow]) -> list[Event]:
    """Insert events, in order; those whose `id` is already stored are skipped (the worker retries
    a write whose commit outcome it could not know), and only the new ones are returned."""
    if not values:
        return []
    if all(v.get("id") for v in values):
        # ON CONFLICT DO NOTHING returns fewer rows than given: put them back in order by id.
        # render_nulls: every row has every column (EventRow), so None is NULL and all rows go in
        # one statement (by default the ORM omits None values and splits rows by their key sets).
        stored = {e.id: e for e in (await session.execute(ADD_EVENTS, list(values))).scalars()}
        return [stored[v["id"]] for v in values if v["id"] in stored]
    stmt = insert(Event).returning(Event, sort_by_parameter_order=True)
    return list((await session.execute(stmt, list(values))).scalars())


async def asset_execution_rows(session: AsyncSession, org_id: uuid.UUID, run_id: uuid.UUID) -> list[Any]:
    v = asset_executions.c
    stmt = (
        select(asset_executions)
        .where(v.org_id == org_id, v.run_id == run_id)
        .order_by(v.created_at.asc().nulls_last(), v.started_at.asc().nulls_last(), v.asset_key, v.asset_id)
    )
    return list((await session.execute(stmt)).all())


def run_values(
    org_id: uuid.UUID,
    job_id: uuid.UUID | None,
    *,
    status: str,
    partition_date: date | None = None,
    backfill_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "job_id": job_id,
        "status": status,
        "partition_date": partition_date,
        "backfill_id": backfill_id,
    }
