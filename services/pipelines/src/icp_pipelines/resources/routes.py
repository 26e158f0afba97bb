"""`/api/resources` (spec 2.7): kinds (public), list/get (viewer), create/update/delete (editor)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.web import EditorDep, ViewerDep

from ..deps import CatalogDep, CipherDep, SessionDep
from ..schemas import Deleted
from . import service
from .schemas import ResourceCreate, ResourceDetail, ResourceRead, ResourceUpdate

router = APIRouter(prefix="/api/resources", tags=["resources"])


@router.get("/kinds", response_model=list[str])
async def resource_kinds(catalog: CatalogDep) -> list[str]:
    """Sorted kinds of the catalog's resource entries (no authentication)."""
    return catalog.resource_kinds


@router.get("/", response_model=list[ResourceRead])
async def list_resources(identity: ViewerDep, db: SessionDep, kind: str | None = None) -> list[ResourceRead]:
    return await service.list_resources(db, identity, kind)


@router.get("/{resource_id}", response_model=ResourceDetail)
async def get_resource(
    identity: ViewerDep, resource_id: uuid.UUID, db: SessionDep, catalog: CatalogDep, cipher: CipherDep
) -> ResourceDetail:
    """The resource with its data; viewers get secret fields masked (issue 15)."""
    return await service.get(db, identity, catalog, cipher, resource_id)


@router.post("/", response_model=ResourceRead)
async def create_resource(
    identity: EditorDep, body: ResourceCreate, db: SessionDep, catalog: CatalogDep, cipher: CipherDep
) -> ResourceRead:
    return await service.create(db, identity, catalog, cipher, **body.model_dump())


@router.put("/{resource_id}", response_model=ResourceRead)
async def update_resource(
    identity: EditorDep,
    resource_id: uuid.UUID,
    body: ResourceUpdate,
    db: SessionDep,
    catalog: CatalogDep,
    cipher: CipherDep,
) -> ResourceRead:
    return await service.update(db, identity, catalog, cipher, resource_id, **body.model_dump())


@router.delete("/{resource_id}", response_model=Deleted)
async def delete_resource(identity: EditorDep, resource_id: uuid.UUID, db: SessionDep) -> Deleted:
    await service.delete(db, identity, resource_id)
    return Deleted()
