"""Backfill use cases: reading, and the rules of a new backfill's range and concurrency (creating
one, and every change of its status, is in `runs.lifecycle`)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable

from . import repository
from .models import Backfill
from .schemas import BackfillRead

MAX_PARTITIONS = 3660
MAX_CONCURRENCY = 1000


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


async def list_backfills(session: AsyncSession, caller: Member, *, active_only: bool = False) -> list[BackfillRead]:
    return [read(b) for b in await repository.list_for_org(session, caller.org_id, active_only=active_only)]


async def get(session: AsyncSession, caller: Member, backfill_id: uuid.UUID) -> BackfillRead:
    row = await repository.get(session, caller.org_id, backfill_id)
    if row is None:
        raise not_found(backfill_id)
    return read(row)


def check_range(start_date: date, end_date: date, concurrency: int) -> int:
    """The number of partitions; 422 for a reversed range, a too long one, or a concurrency out of
    1..1000 (the rules of both transports; REST also documents them in its schema)."""
    if end_date < start_date:
        raise Unprocessable(f"end_date {end_date} is before start_date {start_date}")
    if concurrency < 1:
        raise Unprocessable("concurrency must be at least 1")
    if concurrency > MAX_CONCURRENCY:
        raise Unprocessable(f"concurrency must be at most {MAX_CONCURRENCY}")
    partitions = (end_date - start_date).days + 1
    if partitions > MAX_PARTITIONS:
        raise Unprocessable(f"A backfill covers at most {MAX_PARTITIONS} days (got {partitions})")
    return partitions
