"""`/api/destinations` (spec 2.9)."""

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
from .schemas import DestinationCreate, DestinationRead, DestinationUpdate

router = APIRouter(prefix="/api/destinations", tags=["destinations"])


@router.get("/", response_model=list[DestinationRead])
async def list_destinations(caller: ViewerCaller, db: SessionDep) -> list[DestinationRead]:
    return await service.list_destinations(db, caller)


@router.post("/", response_model=DestinationRead)
async def create_destination(
    caller: EditorCaller,
    key: IdempotencyKeyDep,
    body: DestinationCreate,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> DestinationRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer."""
    create = audit.after(
        "destinations.create", "destination", lambda: service.create(db, caller, catalog, **body.model_dump())
    )
    return await idempotency_keys.run(db, key, caller, create)


@router.put("/{destination_id}", response_model=DestinationRead)
async def update_destination(
    caller: EditorCaller,
    destination_id: uuid.UUID,
    body: DestinationUpdate,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> DestinationRead:
    destination = await service.update(
        db, caller, catalog, destination_id, name=body.name, config=body.config, resources=body.resources
    )
    await audit("destinations.update", "destination", destination_id)
    return destination


@router.delete("/{destination_id}", response_model=Deleted)
async def delete_destination(
    caller: EditorCaller, destination_id: uuid.UUID, db: SessionDep, audit: AuditDep
) -> Deleted:
    await service.delete(db, caller, destination_id)
    await audit("destinations.delete", "destination", destination_id)
    return Deleted()
