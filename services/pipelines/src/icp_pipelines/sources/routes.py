"""`/api/sources` (spec 2.8)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from icp_common.caller import EditorCaller, ViewerCaller
from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, CatalogDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import SourceRead, SourceWrite

router = APIRouter(prefix="/api/sources", tags=["sources"])


@router.get("/", response_model=list[SourceRead])
async def list_sources(caller: ViewerCaller, db: SessionDep) -> list[SourceRead]:
    return await service.list_sources(db, caller)


@router.post("/", response_model=SourceRead)
async def create_source(
    caller: EditorCaller,
    key: IdempotencyKeyDep,
    body: SourceWrite,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> SourceRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer."""
    create = audit.after("sources.create", "source", lambda: service.create(db, caller, catalog, **body.model_dump()))
    return await idempotency_keys.run(db, key, caller, create)


@router.put("/{source_id}", response_model=SourceRead)
async def update_source(
    caller: EditorCaller,
    source_id: uuid.UUID,
    body: SourceWrite,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> SourceRead:
    source = await service.update(db, caller, catalog, source_id, **body.model_dump(exclude={"key"}))
    await audit("sources.update", "source", source_id)
    return source


@router.delete("/{source_id}", response_model=Deleted)
async def delete_source(caller: EditorCaller, source_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> Deleted:
    await service.delete(db, caller, source_id)
    await audit("sources.delete", "source", source_id)
    return Deleted()
