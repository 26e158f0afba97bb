"""`/api/runs` (spec 2.11): list with filters and pagination, one run, its events (cursor) and
asset executions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from icp_common.caller import EditorCaller, ViewerCaller

from ..deps import AuditDep, SessionDep
from ..execution.schemas import AUTH_ERRORS, errors
from . import lifecycle, service
from .schemas import AssetExecutionRead, EventRead, RunRead

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("/", response_model=list[RunRead])
async def list_runs(
    caller: ViewerCaller,
    db: SessionDep,
    job_id: uuid.UUID | None = None,
    backfill_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: Annotated[int | None, Query(ge=0, le=service.MAX_LIMIT)] = None,
    offset: Annotated[int, Query(ge=0, le=service.MAX_OFFSET)] = 0,
) -> list[RunRead]:
    return await service.list_runs(
        db, caller, job_id=job_id, backfill_id=backfill_id, status=status, limit=limit, offset=offset
    )


@router.get("/{run_id}", response_model=RunRead)
async def get_run(caller: ViewerCaller, run_id: uuid.UUID, db: SessionDep) -> RunRead:
    return await service.get(db, caller, run_id)


@router.get("/{run_id}/asset-executions", response_model=list[AssetExecutionRead])
async def asset_executions(caller: ViewerCaller, run_id: uuid.UUID, db: SessionDep) -> list[AssetExecutionRead]:
    return await service.asset_executions(db, caller, run_id)


@router.get("/{run_id}/events", response_model=list[EventRead])
async def list_events(
    caller: ViewerCaller,
    run_id: uuid.UUID,
    db: SessionDep,
    limit: Annotated[int | None, Query(ge=0, le=service.EVENTS_MAX_LIMIT)] = None,
    after: uuid.UUID | None = None,
) -> list[EventRead]:
    return await service.list_events(db, caller, run_id, limit=limit, after=after)


@router.post(
    "/{run_id}/cancel",
    response_model=RunRead,
    responses=errors(
        **AUTH_ERRORS,
        e404="`Run <id> not found` (unknown, or of another organisation)",
        e409="`Run <id> is already <status>` (success, failed or canceled)",
    ),
)
async def cancel_run(caller: EditorCaller, run_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> RunRead:
    """Cancel a run (editor). A pending or queued run is `canceled` at once. A dispatched or
    running one is `canceled` too and its process is terminated within seconds; its unfinished
    assets get `asset_canceled` and a `log` event records who canceled it. A run of a backfill
    frees its slot: the next pending partition is queued. Returns the run."""
    run = await lifecycle.cancel_run(db, caller, run_id)
    await audit("runs.cancel", "run", run_id)
    return run
