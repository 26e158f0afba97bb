"""`/api/destinations` (spec 2.9)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.web import EditorDep, ViewerDep

from ..deps import CatalogDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import DestinationCreate, DestinationRead, DestinationUpdate

router = APIRouter(prefix="/api/destinations", tags=["destinations"])


@router.get("/", response_model=list[DestinationRead])
async def list_destinations(identity: ViewerDep, db: SessionDep) -> list[DestinationRead]:
    return await service.list_destinations(db, identity)


@router.post("/", response_model=DestinationRead)
async def create_destination(
    identity: EditorDep, body: DestinationCreate, db: SessionDep, catalog: CatalogDep
) -> DestinationRead:
    return await service.create(db, identity, catalog, **body.model_dump())


@router.put("/{destination_id}", response_model=DestinationRead)
async def update_destination(
    identity: EditorDep, destination_id: uuid.UUID, body: DestinationUpdate, db: SessionDep, catalog: CatalogDep
) -> DestinationRead:
    return await service.update(
        db, identity, catalog, destination_id, name=body.name, config=body.config, resources=body.resources
    )


@router.delete("/{destination_id}", response_model=Deleted)
async def delete_destination(identity: EditorDep, destination_id: uuid.UUID, db: SessionDep) -> Deleted:
    await service.delete(db, identity, destination_id)
    return Deleted()
