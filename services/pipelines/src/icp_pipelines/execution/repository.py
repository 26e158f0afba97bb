"""Queries of run execution: claiming, guarded status transitions, heartbeats, the reaper's and
the backfill sweep's candidates, due jobs. System-level (workers and the scheduler act for every
organisation); the API's callers pass `org_id`. The status writes here (`claim`, `transition`)
are called by `runs.lifecycle` only.

Lock order, everywhere: a backfill row before its runs; several runs by id. Transitions are one
`UPDATE ... WHERE status IN (...) RETURNING`, so a run that changed meanwhile is simply not
returned (never overwritten). Rows are locked `FOR NO KEY UPDATE`, never `FOR UPDATE` (their keys
never change): an insert referencing them (an event's backfill, a log line's run: a foreign-key
check, `FOR KEY SHARE`) then never waits for the lock, so a transaction that holds a run and
inserts its events (the worker) cannot deadlock with one that holds the run's backfill and then
updates the run (a backfill cancel)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Integer, String, Uuid, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

from ..backfills.models import Backfill
from ..jobs.models import Job
from ..runs.models import Run, asset_executions
from ..runs.status import ACTIVE_BACKFILL, INFLIGHT, STARTED, UNFINISHED, RunStatus

OPEN_ASSET = ("queued", "running")  # asset execution statuses (the asset_executions view)


def _claim_statement() -> Any:
    """Built once, bound parameters only (see `_transition_statement`)."""
    oldest = (
        select(Run.id)
        .where(Run.status == RunStatus.QUEUED)
        .order_by(Run.created_at)
        .limit(bindparam("c_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    now = func.clock_timestamp()
    return (
        update(Run)
        .where(Run.id.in_(oldest), Run.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.DISPATCHED,
            dispatched_at=now,
            heartbeat_at=now,
            worker_id=bindparam("c_worker_id", type_=String),
            attempts=Run.attempts + 1,
        )
        .returning(Run)
        .execution_options(populate_existing=True, synchronize_session=False)
    )


CLAIM = _claim_statement()


async def claim(session: AsyncSession, worker_id: str, limit: int) -> list[Run]:
    """queued -> dispatched for the `limit` oldest queued runs nobody else is claiming."""
    rows = list((await session.execute(CLAIM, {"c_limit": limit, "c_worker_id": worker_id})).scalars())
    rows.sort(key=lambda r: r.created_at)
    return rows


async def dispatched_to(session: AsyncSession, worker_id: str, known: Sequence[uuid.UUID]) -> list[Run]:
    """Runs dispatched to this worker (still dispatched, or started by its claim) that it does not
    know of: its claim committed while the connection dropped before the answer (the worker saw
    an error and claims again)."""
    stmt = (
        select(Run)
        .where(Run.status.in_(STARTED), Run.worker_id == worker_id, Run.id.not_in(list(known)))
        .order_by(Run.created_at)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


_TRANSITIONS: dict[tuple[Any, ...], Any] = {}


# Ids bound as one array (`= ANY(:ids)`), not an expanding IN list: one statement text, so one
# prepared statement per pooled backend, whatever the number of ids (each new IN-list length was
# another one, a backend's memory growing with every new batch size: `make soak`).
UUID_ARRAY = ARRAY(Uuid)


def _transition_statement(from_statuses: Sequence[str], values: Mapping[str, Any], scoped: bool) -> Any:
    """The UPDATE of `transition`, built once per shape (building it per call was a fifth of the
    worker's CPU): ids, org and plain values are bound parameters; SQL expressions among `values`
    (`func.clock_timestamp()`) are part of the shape, by their SQL text."""
    shape = tuple((k, str(v) if isinstance(v, ClauseElement) else None) for k, v in values.items())
    key = (tuple(from_statuses), shape, scoped)
    stmt = _TRANSITIONS.get(key)
    if stmt is None:
        columns = Run.__table__.c
        stmt = update(Run).where(
            Run.id == any_(bindparam("t_ids", type_=UUID_ARRAY)), Run.status.in_(list(from_statuses))
        )
        if scoped:
            stmt = stmt.where(Run.org_id == bindparam("t_org_id", type_=Uuid))
        stmt = stmt.values(
            {
                k: v if isinstance(v, ClauseElement) else bindparam(f"t_{k}", type_=columns[k].type)
                for k, v in values.items()
            }
        )
        stmt = stmt.returning(Run).execution_options(populate_existing=True, synchronize_session=False)
        _TRANSITIONS[key] = stmt
    return stmt


async def transition(
    session: AsyncSession,
    ids: Iterable[uuid.UUID],
    *,
    from_statuses: Sequence[str],
    values: Mapping[str, Any],
    org_id: uuid.UUID | None = None,
) -> list[Run]:
    """Set `values` on the runs among `ids` whose status is in `from_statuses`; returns them."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = _transition_statement(from_statuses, values, org_id is not None)
    params: dict[str, Any] = {f"t_{k}": v for k, v in values.items() if not isinstance(v, ClauseElement)}
    params["t_ids"] = wanted
    if org_id is not None:
        params["t_org_id"] = org_id
    rows = list((await session.execute(stmt, params)).scalars())
    order = {run_id: i for i, run_id in enumerate(wanted)}
    rows.sort(key=lambda r: order[r.id])
    return rows


_LOCK_RUN = select(Run).where(Run.id == bindparam("l_id", type_=Uuid)).execution_options(populate_existing=True)
LOCK_RUN = {
    share: _LOCK_RUN.with_for_update(read=share, key_share=not share)  # FOR SHARE | FOR NO KEY UPDATE
    for share in (False, True)
}


async def lock_run(session: AsyncSession, run_id: uuid.UUID, *, share: bool = False) -> Run | None:
    return (await session.execute(LOCK_RUN[share], {"l_id": run_id})).scalar_one_or_none()


async def lock_backfill(
    session: AsyncSession, backfill_id: uuid.UUID, org_id: uuid.UUID | None = None
) -> Backfill | None:
    stmt = select(Backfill).where(Backfill.id == backfill_id).execution_options(populate_existing=True)
    if org_id is not None:
        stmt = stmt.where(Backfill.org_id == org_id)
    # FOR NO KEY UPDATE: inserts of events and runs referencing the backfill go on (module docstring).
    return (await session.execute(stmt.with_for_update(key_share=True))).scalar_one_or_none()


@dataclass(frozen=True)
class PartitionRun:
    """The latest run of one partition of a backfill (older ones were retried)."""

    id: uuid.UUID
    status: str
    partition_date: date | None


async def latest_runs(session: AsyncSession, backfill_id: uuid.UUID) -> list[PartitionRun]:
    """Per partition date, the newest run (retry-failed adds runs), in date order (one query)."""
    stmt = (
        select(Run.id, Run.status, Run.partition_date)
        .where(Run.backfill_id == backfill_id)
        .ext(distinct_on(Run.partition_date))
        .order_by(Run.partition_date, Run.created_at.desc(), Run.id.desc())
    )
    return [PartitionRun(r.id, r.status, r.partition_date) for r in (await session.execute(stmt)).all()]


async def unfinished_runs(session: AsyncSession, backfill_id: uuid.UUID) -> list[Run]:
    stmt = (
        select(Run)
        .where(Run.backfill_id == backfill_id, Run.status.in_(UNFINISHED))
        .order_by(Run.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def open_assets(session: AsyncSession, run_ids: Iterable[uuid.UUID]) -> list[Any]:
    """Assets of these runs whose last state is queued or running (from `asset_executions`)."""
    wanted = set(run_ids)
    if not wanted:
        return []
    v = asset_executions.c
    stmt = (
        select(v.run_id, v.org_id, v.asset_id, v.asset_key)
        .where(v.run_id.in_(wanted), v.status.in_(OPEN_ASSET))
        .order_by(v.run_id, v.created_at, v.asset_key, v.asset_id)
    )
    return list((await session.execute(stmt)).all())


def _heartbeat_statement() -> Any:
    free = (
        select(Run.id)
        .where(Run.id == any_(bindparam("h_ids", type_=UUID_ARRAY)), Run.status.in_(STARTED))
        .with_for_update(skip_locked=True, key_share=True)
        .scalar_subquery()
    )
    return (
        update(Run)
        .where(Run.id.in_(free))
        .values(heartbeat_at=func.clock_timestamp(), updated_at=Run.updated_at)
        .execution_options(synchronize_session=False)
    )


HEARTBEAT = _heartbeat_statement()
STATUSES = select(Run.id, Run.status).where(Run.id == any_(bindparam("s_ids", type_=UUID_ARRAY)))


async def heartbeat(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """heartbeat_at = now for these in-flight runs; rows locked by a transition are skipped (they
    are changing anyway), so a heartbeat never waits for, or deadlocks with, another transaction."""
    if not ids:
        return
    await session.execute(HEARTBEAT, {"h_ids": list(ids)})


async def statuses(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    return {r.id: r.status for r in (await session.execute(STATUSES, {"s_ids": list(ids)})).all()}


@dataclass(frozen=True)
class LostRun:
    id: uuid.UUID
    org_id: uuid.UUID
    backfill_id: uuid.UUID | None
    status: str
    worker_id: str | None
    heartbeat_at: datetime | None
    heartbeat_lost: bool  # else: still dispatched after the dispatch timeout
    reason: str


async def lost_runs(
    session: AsyncSession, *, heartbeat_timeout: float, dispatch_timeout: float, limit: int
) -> list[LostRun]:
    """In-flight runs whose heartbeat is older than `heartbeat_timeout`, or still dispatched
    `dispatch_timeout` after their dispatch (no lock: each is re-checked when it is failed).

    A heartbeat's age counts from the database server's start at the earliest: while the server
    was down or restarting no worker could heartbeat, so after a restart live workers get a full
    `heartbeat_timeout` to heartbeat again (and store the outcomes they were retrying) before a
    run is declared lost."""
    now = func.clock_timestamp()
    last = func.coalesce(Run.heartbeat_at, Run.dispatched_at, Run.started_at, Run.created_at)
    beat = func.greatest(last, func.pg_postmaster_start_time())
    dispatched = func.coalesce(Run.dispatched_at, Run.created_at)
    stale = beat < now - func.make_interval(0, 0, 0, 0, 0, 0, heartbeat_timeout)
    slow = and_(
        Run.status == RunStatus.DISPATCHED, dispatched < now - func.make_interval(0, 0, 0, 0, 0, 0, dispatch_timeout)
    )
    age = func.extract("epoch", now - beat)
    stmt = (
        select(Run.id, Run.org_id, Run.backfill_id, Run.status, Run.worker_id, Run.heartbeat_at, stale, age)
        .where(Run.status.in_(STARTED), or_(stale, slow))
        .order_by(beat)
        .limit(limit)
    )
    found: list[LostRun] = []
    for row in (await session.execute(stmt)).all():
        if row[6]:
            who = f"worker {row.worker_id}" if row.worker_id else "its worker"
            reason = f"Run lost: no heartbeat from {who} for {int(row[7])} s"
        else:
            reason = f"Run timed out after {dispatch_timeout:g}s (still 'dispatched')"
        found.append(
            LostRun(row.id, row.org_id, row.backfill_id, row.status, row.worker_id, row.heartbeat_at, row[6], reason)
        )
    return found


async def stalled_backfills(session: AsyncSession, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Active backfills with a free slot (fewer in-flight runs than their concurrency): either a
    pending run could be promoted, or nothing is left and the backfill can be finished."""
    inflight = (
        select(func.count())
        .where(Run.backfill_id == Backfill.id, Run.status.in_(INFLIGHT))
        .correlate(Backfill)
        .scalar_subquery()
    )
    stmt = (
        select(Backfill.id, Backfill.org_id)
        .where(Backfill.status.in_(ACTIVE_BACKFILL), inflight < Backfill.concurrency)
        .order_by(Backfill.updated_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in (await session.execute(stmt)).all()]


async def due_jobs(session: AsyncSession, now: datetime, limit: int) -> list[Job]:
    """Enabled jobs whose tick is due (or never scheduled), locked; jobs another scheduler
    transaction holds are skipped. Unscheduled (NULL) ones come last, so they never hold back
    due ones."""
    stmt = (
        select(Job)
        .where(Job.enabled.is_(True), or_(Job.next_run_at <= now, Job.next_run_at.is_(None)))
        .order_by(Job.next_run_at.asc().nulls_last(), Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())
