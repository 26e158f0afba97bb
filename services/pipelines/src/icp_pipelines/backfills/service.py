"""Backfill use cases: reading, and creating a backfill with its runs (one per day; the first
`concurrency` queued, the rest pending) in one transaction with their realtime events."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import NotFound, Unprocessable
from icp_common.identity import Identity

from .. import realtime, scope
from ..runs import repository as runs_repository
from ..runs import service as runs_service
from . import repository
from .models import Backfill
from .schemas import BackfillRead

MAX_PARTITIONS = 3660


def not_found(backfill_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Backfill {backfill_id} not found")


def read(row: Backfill) -> BackfillRead:
    return BackfillRead(
        id=row.id,
        org_id=row.org_id,
        job_id=row.job_id,
        status=row.status,
        start_date=row.start_date,
        end_date=row.end_date,
        concurrency=row.concurrency,
        fail_fast=row.fail_fast,
        partitions=row.partitions,
        started_at=row.started_at,
        completed_at=row.completed_at,
        created_at=row.created_at,
    )


async def list_backfills(session: AsyncSession, identity: Identity, *, active_only: bool = False) -> list[BackfillRead]:
    return [read(b) for b in await repository.list_for_org(session, scope.org_id(identity), active_only=active_only)]


async def get(session: AsyncSession, identity: Identity, backfill_id: uuid.UUID) -> BackfillRead:
    row = await repository.get(session, scope.org_id(identity), backfill_id)
    if row is None:
        raise not_found(backfill_id)
    return read(row)


def check_range(start_date: date, end_date: date, concurrency: int) -> int:
    """The number of partitions; 422 for a reversed range, a too long one, or concurrency < 1."""
    if end_date < start_date:
        raise Unprocessable(f"end_date {end_date} is before start_date {start_date}")
    if concurrency < 1:
        raise Unprocessable("concurrency must be at least 1")
    partitions = (end_date - start_date).days + 1
    if partitions > MAX_PARTITIONS:
        raise Unprocessable(f"A backfill covers at most {MAX_PARTITIONS} days (got {partitions})")
    return partitions


async def create(
    session: AsyncSession,
    org_id: uuid.UUID,
    job_id: uuid.UUID | None,
    *,
    start_date: date,
    end_date: date,
    concurrency: int = 1,
    fail_fast: bool = False,
    queue_all: bool = False,
) -> Backfill:
    """A running backfill and its runs; `queue_all` queues every run (bounded by the worker instead)."""
    partitions = check_range(start_date, end_date, concurrency)
    backfill = await repository.add(
        session,
        Backfill(
            org_id=org_id,
            job_id=job_id,
            status="running",
            start_date=start_date,
            end_date=end_date,
            concurrency=concurrency,
            fail_fast=fail_fast,
            partitions=partitions,
            started_at=func.now(),
        ),
    )
    await session.refresh(backfill)
    await realtime.publish_change(session, "backfills", "INSERT", backfill)
    values = [
        runs_repository.run_values(
            org_id,
            job_id,
            status="queued" if queue_all or i < concurrency else "pending",
            partition_date=start_date + timedelta(days=i),
            backfill_id=backfill.id,
        )
        for i in range(partitions)
    ]
    await runs_service.create_runs(session, values)
    return backfill


async def save_changes(session: AsyncSession, rows: list[Backfill]) -> None:
    """Flush changes made to backfill rows (status, completed_at, ...) and publish their UPDATE
    events; the scheduler and the worker change backfills only through this function."""
    await session.flush()
    await realtime.publish_changes(session, "backfills", "UPDATE", rows)
