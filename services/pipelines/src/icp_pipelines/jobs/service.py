"""Job use cases: cron-validated schedules over sources and assets of the caller's organisation,
and the run/backfill triggers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable
from icp_common.outbox import OutboxMessage

from .. import realtime
from ..assets import repository as assets_repository
from ..assets import service as assets_service
from ..backfills.models import Backfill
from ..runs import lifecycle
from ..runs.models import Run
from ..sources import service as sources_service
from . import repository
from .models import Job
from .schemas import JobRead


def not_found(job_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Job {job_id} not found")


def validate_cron(expression: str) -> None:
    """Standard 5-field cron only: croniter would also take a sixth (seconds) field, which made
    a job fire at every scheduler cycle."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise Unprocessable(f"Invalid cron expression: '{expression}'")


def next_run(expression: str, after: datetime | None = None) -> datetime:
    """The first tick of `expression` strictly after `after` (now), in UTC."""
    base = after or datetime.now(UTC)
    value: datetime = croniter(expression, base).get_next(datetime)
    return value


def read(row: Job, source_ids: list[uuid.UUID], asset_ids: list[uuid.UUID]) -> JobRead:
    return JobRead(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        cron=row.cron,
        tags=list(row.tags or []),
        enabled=row.enabled,
        partitioned=row.partitioned,
        backfill_days=row.backfill_days,
        source_ids=source_ids,
        asset_ids=asset_ids,
        last_run_at=row.last_run_at,
        next_run_at=row.next_run_at,
        created_at=row.created_at,
    )


async def _read_one(session: AsyncSession, row: Job) -> JobRead:
    sources, assets = await repository.links(session, row.org_id, [row.id])
    return read(row, sources.get(row.id, []), assets.get(row.id, []))


async def list_jobs(session: AsyncSession, caller: Member) -> list[JobRead]:
    org_id = caller.org_id
    rows = await repository.list_for_org(session, org_id)
    sources, assets = await repository.links(session, org_id)
    return [read(r, sources.get(r.id, []), assets.get(r.id, [])) for r in rows]


async def _get_row(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    row = await repository.get(session, org_id, job_id)
    if row is None:
        raise not_found(job_id)
    return row


async def get(session: AsyncSession, caller: Member, job_id: uuid.UUID) -> JobRead:
    return await _read_one(session, await _get_row(session, caller.org_id, job_id))


async def _check_assets(session: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    found = await assets_repository.get_many(session, org_id, ids)
    for asset_id in ids:
        if asset_id not in found:
            raise assets_service.not_found(asset_id)
    return list(dict.fromkeys(ids))


async def create(
    session: AsyncSession,
    caller: Member,
    *,
    name: str,
    cron: str,
    source_ids: list[uuid.UUID] | None = None,
    asset_ids: list[uuid.UUID] | None = None,
    tags: list[str] | None = None,
    enabled: bool = True,
    partitioned: bool = False,
    backfill_days: int | None = None,
) -> JobRead:
    org_id = caller.org_id
    validate_cron(cron)
    sources = await sources_service.check_ids(session, org_id, source_ids or [])
    assets = await _check_assets(session, org_id, asset_ids or [])
    row = await repository.add(
        session,
        Job(
            org_id=org_id,
            name=name,
            cron=cron,
            tags=list(tags or []),
            enabled=enabled,
            partitioned=partitioned,
            backfill_days=backfill_days,
            next_run_at=next_run(cron) if enabled else None,
        ),
    )
    await repository.replace_sources(session, org_id, row.id, sources)
    await repository.replace_assets(session, org_id, row.id, assets)
    return read(row, sources, assets)


async def update(
    session: AsyncSession,
    caller: Member,
    job_id: uuid.UUID,
    *,
    name: str,
    cron: str,
    source_ids: list[uuid.UUID] | None = None,
    asset_ids: list[uuid.UUID] | None = None,
    tags: list[str] | None = None,
    enabled: bool = True,
    partitioned: bool = False,
    backfill_days: int | None = None,
) -> JobRead:
    """Full replacement (spec 2.10): omitted lists become empty, omitted flags their defaults.
    A new cron, or enabling, recomputes `next_run_at`; disabling clears it."""
    org_id = caller.org_id
    row = await _get_row(session, org_id, job_id)
    validate_cron(cron)
    sources = await sources_service.check_ids(session, org_id, source_ids or [])
    assets = await _check_assets(session, org_id, asset_ids or [])
    await repository.replace_sources(session, org_id, row.id, sources)
    await repository.replace_assets(session, org_id, row.id, assets)
    reschedule = cron != row.cron or enabled != row.enabled
    row.name, row.cron, row.tags, row.enabled = name, cron, list(tags or []), enabled
    row.partitioned, row.backfill_days = partitioned, backfill_days
    if reschedule:
        row.next_run_at = next_run(cron) if enabled else None
    await repository.touch(session, row)
    return read(row, sources, assets)


async def set_enabled(session: AsyncSession, caller: Member, job_id: uuid.UUID, enabled: bool) -> JobRead:
    """Enable or disable only (gRPC): the rest of the job is kept."""
    row = await _get_row(session, caller.org_id, job_id)
    if enabled != row.enabled:
        row.enabled = enabled
        row.next_run_at = next_run(row.cron) if enabled else None
    await repository.touch(session, row)
    return await _read_one(session, row)


async def delete(session: AsyncSession, caller: Member, job_id: uuid.UUID) -> None:
    """Delete a job; its runs and backfills stay, with `job_id` null (published as UPDATEs)."""
    org_id = caller.org_id
    await _get_row(session, org_id, job_id)
    runs, backfills = await repository.detach_history(session, org_id, job_id)
    await realtime.publish_changes(session, "backfills", "UPDATE", backfills)
    await realtime.publish_changes(session, "runs", "UPDATE", runs)
    await repository.delete_one(session, org_id, job_id)


async def trigger_run(
    session: AsyncSession,
    caller: Member,
    job_id: uuid.UUID,
    partition_date: date | None,
    also: Callable[[Run], Sequence[OutboxMessage]] | None = None,
) -> Run:
    """Queue a run of the job (404 if the organisation has none): two statements, the run (with
    the job's `last_run_at`) and its outbox rows (with `also(run)`: the audit entry)."""
    run = await lifecycle.queue_job_run(session, caller.org_id, job_id, partition_date, also)
    if run is None:
        raise not_found(job_id)
    return run


async def trigger_backfill(
    session: AsyncSession,
    caller: Member,
    job_id: uuid.UUID,
    *,
    start_date: date,
    end_date: date,
    concurrency: int | None = None,
    fail_fast: bool = False,
) -> Backfill:
    """A backfill of the job (concurrency 1 unless given)."""
    org_id = caller.org_id
    job = await _get_row(session, org_id, job_id)
    backfill = await lifecycle.create_backfill(
        session,
        org_id,
        job.id,
        start_date=start_date,
        end_date=end_date,
        concurrency=1 if concurrency is None else concurrency,
        fail_fast=fail_fast,
    )
    await repository.mark_run(session, org_id, job.id)
    return backfill
