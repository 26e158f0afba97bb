"""`/api/sources` (spec 2.8)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.web import EditorDep, ViewerDep

from ..deps import CatalogDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import SourceRead, SourceWrite

router = APIRouter(prefix="/api/sources", tags=["sources"])


@router.get("/", response_model=list[SourceRead])
async def list_sources(identity: ViewerDep, db: SessionDep) -> list[SourceRead]:
    return await service.list_sources(db, identity)


@router.post("/", response_model=SourceRead)
async def create_source(identity: EditorDep, body: SourceWrite, db: SessionDep, catalog: CatalogDep) -> SourceRead:
    return await service.create(db, identity, catalog, **body.model_dump())


@router.put("/{source_id}", response_model=SourceRead)
async def update_source(
    identity: EditorDep, source_id: uuid.UUID, body: SourceWrite, db: SessionDep, catalog: CatalogDep
) -> SourceRead:
    return await service.update(db, identity, catalog, source_id, **body.model_dump(exclude={"key"}))


@router.delete("/{source_id}", response_model=Deleted)
async def delete_source(identity: EditorDep, source_id: uuid.UUID, db: SessionDep) -> Deleted:
    await service.delete(db, identity, source_id)
    return Deleted()
