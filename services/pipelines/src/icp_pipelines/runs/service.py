"""Run use cases: reading runs, events (cursor pagination) and asset executions. Every change of a
run is in `lifecycle`."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable

from . import repository
from .models import Event, Run
from .schemas import AssetExecutionRead, EventRead, RunRead

# The paging rules of both transports (REST documents them as query bounds, gRPC in the proto).
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
EVENTS_DEFAULT_LIMIT = 10_000  # "all" for the web UI, still bounded; continue with `after`
EVENTS_MAX_LIMIT = 10_000
# The events embedded in one run's detail (gRPC GetRun: one response message, not paginated).
DETAIL_EVENTS_DEFAULT, DETAIL_EVENTS_MAX = 100, 1000


def page_size(limit: int | None, *, default: int | None, maximum: int, cap: bool, name: str = "limit") -> int | None:
    """`default` when unset; a negative size is a 422; one above `maximum` is capped (`cap`, the
    gRPC contract) or a 422 (REST)."""
    if limit is None:
        return default
    if limit < 0:
        raise Unprocessable(f"{name} must not be negative")
    if limit > maximum:
        if not cap:
            raise Unprocessable(f"{name} must be at most {maximum}")
        return maximum
    return limit


def not_found(run_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Run {run_id} not found")


def read(row: Run) -> RunRead:
    return RunRead(
        id=row.id,
        org_id=row.org_id,
        job_id=row.job_id,
        backfill_id=row.backfill_id,
        partition_date=row.partition_date,
        status=row.status,
        started_at=row.started_at,
        completed_at=row.completed_at,
        created_at=row.created_at,
    )


def read_event(row: Event) -> EventRead:
    return EventRead(
        id=row.id,
        org_id=row.org_id,
        run_id=row.run_id,
        event_type=row.event_type,
        asset_id=row.asset_id,
        asset_key=row.asset_key,
        partition_or_window=row.partition_or_window,
        error=row.error,
        traceback=row.traceback,
        message=row.message,
        timestamp=row.timestamp,
    )


async def list_runs(
    session: AsyncSession,
    caller: Member,
    *,
    job_id: uuid.UUID | None = None,
    backfill_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    cap: bool = False,
) -> list[RunRead]:
    """Newest first. Without `limit`: 50, or every run when filtering on a backfill (web UI); at
    most 1000 (`cap`: capped, else a 422)."""
    if offset < 0 or (limit is not None and limit < 0):
        raise Unprocessable("limit and offset must not be negative")
    if offset > MAX_OFFSET:
        raise Unprocessable(f"offset must be at most {MAX_OFFSET}")
    limit = page_size(limit, default=None if backfill_id else DEFAULT_LIMIT, maximum=MAX_LIMIT, cap=cap)
    rows = await repository.list_for_org(
        session,
        caller.org_id,
        job_id=job_id,
        backfill_id=backfill_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [read(r) for r in rows]


async def get(session: AsyncSession, caller: Member, run_id: uuid.UUID) -> RunRead:
    row = await repository.get(session, caller.org_id, run_id)
    if row is None:
        raise not_found(run_id)
    return read(row)


async def list_events(
    session: AsyncSession,
    caller: Member,
    run_id: uuid.UUID,
    *,
    limit: int | None = None,
    after: uuid.UUID | None = None,
    cap: bool = False,
) -> list[EventRead]:
    """The run's events, oldest first; without `limit` up to 10 000 (every event of any sane run),
    at most 10 000; `after` = the id of the last event already read (cursor)."""
    limit = page_size(limit, default=EVENTS_DEFAULT_LIMIT, maximum=EVENTS_MAX_LIMIT, cap=cap)
    org_id = caller.org_id
    if not await repository.exists(session, org_id, run_id):
        raise not_found(run_id)
    position = None
    if after is not None:
        position = await repository.event_position(session, org_id, run_id, after)
        if position is None:
            raise NotFound(f"Event {after} not found in run {run_id}")
    return [read_event(e) for e in await repository.events(session, org_id, run_id, limit=limit, after=position)]


async def detail_events(session: AsyncSession, caller: Member, run_id: uuid.UUID, limit: int | None) -> list[EventRead]:
    """The first events of a run shown with it (100 unless `limit`, capped at 1000)."""
    if limit is not None and limit < 0:
        raise Unprocessable("events_limit must not be negative")
    size = page_size(limit, default=DETAIL_EVENTS_DEFAULT, maximum=DETAIL_EVENTS_MAX, cap=True)
    return await list_events(session, caller, run_id, limit=size)


async def asset_executions(session: AsyncSession, caller: Member, run_id: uuid.UUID) -> list[AssetExecutionRead]:
    org_id = caller.org_id
    if not await repository.exists(session, org_id, run_id):
        raise not_found(run_id)
    rows = await repository.asset_execution_rows(session, org_id, run_id)
    return [AssetExecutionRead.model_validate(dict(r._mapping)) for r in rows]
