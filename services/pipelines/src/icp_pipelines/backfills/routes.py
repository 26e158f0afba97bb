"""`/api/backfills` (spec 2.12)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.caller import EditorCaller, ViewerCaller

from ..deps import AuditDep, SessionDep
from ..execution.schemas import AUTH_ERRORS, errors
from ..runs import lifecycle
from . import service
from .schemas import BackfillRead

router = APIRouter(prefix="/api/backfills", tags=["backfills"])


@router.get("/", response_model=list[BackfillRead])
async def list_backfills(caller: ViewerCaller, db: SessionDep, active_only: bool = False) -> list[BackfillRead]:
    """Newest first; `active_only` keeps the queued and running ones."""
    return await service.list_backfills(db, caller, active_only=active_only)


@router.get("/{backfill_id}", response_model=BackfillRead)
async def get_backfill(caller: ViewerCaller, backfill_id: uuid.UUID, db: SessionDep) -> BackfillRead:
    return await service.get(db, caller, backfill_id)


@router.post(
    "/{backfill_id}/cancel",
    response_model=BackfillRead,
    responses=errors(
        **AUTH_ERRORS,
        e404="`Backfill <id> not found` (unknown, or of another organisation)",
        e409="`Backfill <id> is already <status>` (success, failed or canceled)",
    ),
)
async def cancel_backfill(
    caller: EditorCaller, backfill_id: uuid.UUID, db: SessionDep, audit: AuditDep
) -> BackfillRead:
    """Cancel a backfill (editor), atomically: its pending and queued runs are `canceled`, its
    dispatched and running runs are `canceled` and their processes terminated (as
    `POST /api/runs/{id}/cancel`), and the backfill ends `canceled`. Returns the backfill."""
    backfill = await lifecycle.cancel_backfill(db, caller, backfill_id)
    await audit("backfills.cancel", "backfill", backfill_id)
    return backfill


@router.post(
    "/{backfill_id}/retry-failed",
    response_model=BackfillRead,
    responses=errors(
        **AUTH_ERRORS,
        e404="`Backfill <id> not found` (unknown, or of another organisation)",
        e409="`Backfill <id> has no failed or canceled runs`, or its job was deleted",
    ),
)
async def retry_failed(caller: EditorCaller, backfill_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> BackfillRead:
    """Run the failed and canceled partitions again (editor): for each partition whose latest run
    failed or was canceled, a new run is created (the old one and its events stay); the backfill is
    `running` again and queues them up to its concurrency. Partitions that succeeded, or are still
    pending or in flight, are not touched. Returns the backfill."""
    backfill = await lifecycle.retry_failed(db, caller, backfill_id)
    await audit("backfills.retry", "backfill", backfill_id)
    return backfill
