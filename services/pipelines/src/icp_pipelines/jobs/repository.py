"""Queries on `jobs`, `job_sources`, `job_assets` (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Uuid, bindparam, delete, func, insert, literal_column, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..backfills.models import Backfill
from ..runs.models import Run
from .models import Job, JobAsset, JobSource


async def get(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    stmt = select(Job).where(Job.org_id == org_id, Job.id == job_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[Job]:
    stmt = select(Job).where(Job.org_id == org_id).order_by(Job.created_at, Job.id)
    return list((await session.execute(stmt)).scalars())


async def add(session: AsyncSession, job: Job) -> Job:
    session.add(job)
    await session.flush()
    return job


async def touch(session: AsyncSession, job: Job) -> None:
    job.updated_at = func.now()
    await session.flush()
    await session.refresh(job)


async def delete_one(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    stmt = delete(Job).where(Job.org_id == org_id, Job.id == job_id).returning(Job.id)
    return (await session.execute(stmt)).first() is not None


async def detach_history(
    session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[list[Run], list[Backfill]]:
    """`job_id = NULL` on the job's runs and backfills (before the job goes); returns the rows."""
    runs = await session.execute(
        update(Run).where(Run.org_id == org_id, Run.job_id == job_id).values(job_id=None).returning(Run)
    )
    backfills = await session.execute(
        update(Backfill)
        .where(Backfill.org_id == org_id, Backfill.job_id == job_id)
        .values(job_id=None)
        .returning(Backfill)
    )
    return list(runs.scalars()), list(backfills.scalars())


async def mark_run(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """`last_run_at = now()` (a run of the job was created)."""
    await session.execute(update(Job).where(Job.org_id == org_id, Job.id == job_id).values(last_run_at=func.now()))


async def links(
    session: AsyncSession, org_id: uuid.UUID, job_ids: Iterable[uuid.UUID] | None = None
) -> tuple[dict[uuid.UUID, list[uuid.UUID]], dict[uuid.UUID, list[uuid.UUID]]]:
    """`({job_id: [source ids]}, {job_id: [asset ids]})` in two queries."""
    sources: dict[uuid.UUID, list[uuid.UUID]] = {}
    assets: dict[uuid.UUID, list[uuid.UUID]] = {}
    params: dict[str, Any] = {"l_org_id": org_id}
    if job_ids is not None:
        params["l_job_ids"] = list(set(job_ids))
        if not params["l_job_ids"]:
            return sources, assets
    rows = (await session.execute(_LINKS[job_ids is not None], params)).all()
    for is_source, job_id, linked, _ in sorted(rows, key=lambda t: t[3]):
        (sources if is_source else assets).setdefault(job_id, []).append(linked)
    return sources, assets


def _links(of_jobs: bool) -> Any:
    """`links` in one statement, built once (the worker's plan reads it for every run)."""
    out = []
    for table, linked in ((JobSource, JobSource.source_id), (JobAsset, JobAsset.asset_id)):
        stmt: Any = (
            select(literal_column("true" if table is JobSource else "false"), table.job_id, linked, table.position)
            .join(Job, Job.id == table.job_id)
            .where(Job.org_id == bindparam("l_org_id", type_=Uuid))
        )
        if of_jobs:
            stmt = stmt.where(Job.id.in_(bindparam("l_job_ids", type_=Uuid, expanding=True)))
        out.append(stmt)
    return union_all(*out)


_LINKS = {of_jobs: _links(of_jobs) for of_jobs in (False, True)}


def _owned(org_id: uuid.UUID) -> Any:
    return select(Job.id).where(Job.org_id == org_id)


async def replace_sources(
    session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    """Replace the job's sources (the caller checked the job and the sources belong to org_id)."""
    await session.execute(delete(JobSource).where(JobSource.job_id == job_id, JobSource.job_id.in_(_owned(org_id))))
    if ids:
        await session.execute(
            insert(JobSource), [{"job_id": job_id, "source_id": s, "position": i} for i, s in enumerate(ids)]
        )


async def replace_assets(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
    await session.execute(delete(JobAsset).where(JobAsset.job_id == job_id, JobAsset.job_id.in_(_owned(org_id))))
    if ids:
        await session.execute(
            insert(JobAsset), [{"job_id": job_id, "asset_id": a, "position": i} for i, a in enumerate(ids)]
        )
