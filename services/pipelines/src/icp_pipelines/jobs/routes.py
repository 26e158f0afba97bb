"""`/api/jobs` (spec 2.10) and the run/backfill triggers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from icp_common.caller import EditorCaller, ViewerCaller
from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import BackfillQueued, BackfillRequest, JobRead, JobWrite, RunQueued, RunRequest

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/", response_model=list[JobRead])
async def list_jobs(caller: ViewerCaller, db: SessionDep) -> list[JobRead]:
    return await service.list_jobs(db, caller)


@router.get("/{job_id}", response_model=JobRead)
async def get_job(caller: ViewerCaller, job_id: uuid.UUID, db: SessionDep) -> JobRead:
    return await service.get(db, caller, job_id)


@router.post("/", response_model=JobRead)
async def create_job(
    caller: EditorCaller, key: IdempotencyKeyDep, body: JobWrite, db: SessionDep, audit: AuditDep
) -> JobRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer
    (and records no second audit entry)."""

    async def create() -> JobRead:
        job = await service.create(db, caller, **body.model_dump())
        await audit("jobs.create", "job", job.id)
        return job

    return await idempotency_keys.run(db, key, caller, create)


@router.put("/{job_id}", response_model=JobRead)
async def update_job(
    caller: EditorCaller, job_id: uuid.UUID, body: JobWrite, db: SessionDep, audit: AuditDep
) -> JobRead:
    """Full replacement: omitted fields take their defaults (spec 2.10)."""
    job = await service.update(db, caller, job_id, **body.model_dump())
    await audit("jobs.update", "job", job_id)
    return job


@router.delete("/{job_id}", response_model=Deleted)
async def delete_job(caller: EditorCaller, job_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> Deleted:
    await service.delete(db, caller, job_id)
    await audit("jobs.delete", "job", job_id)
    return Deleted()


@router.post("/{job_id}/run", response_model=RunQueued)
async def run_job(
    caller: EditorCaller,
    job_id: uuid.UUID,
    key: IdempotencyKeyDep,
    db: SessionDep,
    audit: AuditDep,
    body: Annotated[RunRequest | None, Body()] = None,
) -> RunQueued | JSONResponse:
    """Queue one run; the body (`{partition_date}`) is optional. With an `Idempotency-Key`, a
    retry within 24 h replays the first answer instead of queueing another run."""

    async def trigger() -> RunQueued:
        # The audit entry joins the run's own outbox statement (the trigger stays two statements).
        run = await service.trigger_run(
            db,
            caller,
            job_id,
            body.partition_date if body else None,
            lambda run: [audit.message("jobs.run", "run", run.id)],
        )
        return RunQueued(run_id=run.id)

    return await idempotency_keys.run(db, key, caller, trigger)


@router.post("/{job_id}/backfill", response_model=BackfillQueued)
async def backfill_job(
    caller: EditorCaller,
    job_id: uuid.UUID,
    key: IdempotencyKeyDep,
    body: BackfillRequest,
    db: SessionDep,
    audit: AuditDep,
) -> BackfillQueued | JSONResponse:
    """Queue a backfill; `Idempotency-Key` as for a run."""

    async def trigger() -> BackfillQueued:
        backfill = await service.trigger_backfill(db, caller, job_id, **body.model_dump())
        await audit("jobs.backfill", "backfill", backfill.id)
        return BackfillQueued(backfill_id=backfill.id)

    return await idempotency_keys.run(db, key, caller, trigger)
