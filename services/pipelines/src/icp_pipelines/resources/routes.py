"""`/api/resources` (spec 2.7): kinds (public), list/get (viewer), create/update/delete (editor)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from icp_common.caller import EditorCaller, ViewerCaller
from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, CatalogDep, CipherDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import ResourceCreate, ResourceDetail, ResourceRead, ResourceUpdate

router = APIRouter(prefix="/api/resources", tags=["resources"])


@router.get("/kinds", response_model=list[str])
async def resource_kinds(catalog: CatalogDep) -> list[str]:
    """Sorted kinds of the catalog's resource entries (no authentication)."""
    return catalog.resource_kinds


@router.get("/", response_model=list[ResourceRead])
async def list_resources(caller: ViewerCaller, db: SessionDep, kind: str | None = None) -> list[ResourceRead]:
    return await service.list_resources(db, caller, kind)


@router.get("/{resource_id}", response_model=ResourceDetail)
async def get_resource(
    caller: ViewerCaller, resource_id: uuid.UUID, db: SessionDep, catalog: CatalogDep, cipher: CipherDep
) -> ResourceDetail:
    """The resource with its data; viewers get secret fields masked (issue 15)."""
    return await service.get(db, caller, catalog, cipher, resource_id)


@router.post("/", response_model=ResourceRead)
async def create_resource(
    caller: EditorCaller,
    key: IdempotencyKeyDep,
    body: ResourceCreate,
    db: SessionDep,
    catalog: CatalogDep,
    cipher: CipherDep,
    audit: AuditDep,
) -> ResourceRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer
    (which holds no resource data: only the stored answer, never the secrets, is kept)."""
    create = audit.after(
        "resources.create", "resource", lambda: service.create(db, caller, catalog, cipher, **body.model_dump())
    )
    return await idempotency_keys.run(db, key, caller, create)


@router.put("/{resource_id}", response_model=ResourceRead)
async def update_resource(
    caller: EditorCaller,
    resource_id: uuid.UUID,
    body: ResourceUpdate,
    db: SessionDep,
    catalog: CatalogDep,
    cipher: CipherDep,
    audit: AuditDep,
) -> ResourceRead:
    resource = await service.update(db, caller, catalog, cipher, resource_id, **body.model_dump())
    await audit("resources.update", "resource", resource_id)
    return resource


@router.delete("/{resource_id}", response_model=Deleted)
async def delete_resource(caller: EditorCaller, resource_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> Deleted:
    await service.delete(db, caller, resource_id)
    await audit("resources.delete", "resource", resource_id)
    return Deleted()
