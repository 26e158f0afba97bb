"""`/api/backfills` (spec 2.12)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.web import ViewerDep

from ..deps import SessionDep
from . import service
from .schemas import BackfillRead

router = APIRouter(prefix="/api/backfills", tags=["backfills"])


@router.get("/", response_model=list[BackfillRead])
async def list_backfills(identity: ViewerDep, db: SessionDep, active_only: bool = False) -> list[BackfillRead]:
    """Newest first; `active_only` keeps the queued and running ones."""
    return await service.list_backfills(db, identity, active_only=active_only)


@router.get("/{backfill_id}", response_model=BackfillRead)
async def get_backfill(identity: ViewerDep, backfill_id: uuid.UUID, db: SessionDep) -> BackfillRead:
    return await service.get(db, identity, backfill_id)
