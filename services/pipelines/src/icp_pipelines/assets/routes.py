"""`/api/assets` (spec 2.13): assets, overrides and dependency edges."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from icp_common.caller import EditorCaller, ViewerCaller
from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, CatalogDep, CipherDep, SessionDep, SettingsDep
from ..schemas import Deleted
from . import row_counts, service
from .schemas import AssetCreate, AssetRead, AssetUpdate, DependencyCreate, DependencyRead

router = APIRouter(prefix="/api/assets", tags=["assets"])


@router.get("/", response_model=list[AssetRead])
async def list_assets(caller: ViewerCaller, db: SessionDep) -> list[AssetRead]:
    return await service.list_assets(db, caller)


@router.post("/", status_code=201, response_model=AssetRead)
async def create_asset(
    caller: EditorCaller,
    key: IdempotencyKeyDep,
    body: AssetCreate,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> AssetRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer."""
    create = audit.after("assets.create", "asset", lambda: service.create(db, caller, catalog, **body.model_dump()))
    return await idempotency_keys.run(db, key, caller, create)


@router.get("/dependencies", response_model=list[DependencyRead])
async def list_dependencies(caller: ViewerCaller, db: SessionDep) -> list[DependencyRead]:
    return await service.list_dependencies(db, caller)


@router.get("/{asset_id}/partition-row-counts", response_model=row_counts.PartitionRowCounts)
async def partition_row_counts(
    caller: ViewerCaller,
    asset_id: uuid.UUID,
    db: SessionDep,
    catalog: CatalogDep,
    cipher: CipherDep,
    settings: SettingsDep,
) -> row_counts.PartitionRowCounts:
    """Rows per partition in the asset's first destination; 404 while nothing is materialized."""
    return await row_counts.partition_row_counts(db, caller, catalog, cipher, asset_id, settings.oauth)


@router.get("/{asset_id}", response_model=AssetRead)
async def get_asset(caller: ViewerCaller, asset_id: uuid.UUID, db: SessionDep) -> AssetRead:
    return await service.get(db, caller, asset_id)


@router.put("/{asset_id}", response_model=AssetRead)
async def update_asset(
    caller: EditorCaller,
    asset_id: uuid.UUID,
    body: AssetUpdate,
    db: SessionDep,
    catalog: CatalogDep,
    audit: AuditDep,
) -> AssetRead:
    asset = await service.update(db, caller, catalog, asset_id, **body.model_dump())
    await audit("assets.update", "asset", asset_id)
    return asset


@router.delete("/{asset_id}", response_model=Deleted)
async def delete_asset(caller: EditorCaller, asset_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> Deleted:
    await service.delete(db, caller, asset_id)
    await audit("assets.delete", "asset", asset_id)
    return Deleted()


@router.post("/{asset_id}/dependencies", status_code=201, response_model=DependencyRead)
async def add_dependency(
    caller: EditorCaller,
    asset_id: uuid.UUID,
    key: IdempotencyKeyDep,
    body: DependencyCreate,
    db: SessionDep,
    audit: AuditDep,
) -> DependencyRead | JSONResponse:
    """`Idempotency-Key` as for creating an asset. The entry's target is the downstream asset."""

    async def add() -> DependencyRead:
        dependency = await service.add_dependency(db, caller, asset_id, body.upstream_asset_id, body.param_name)
        await audit("assets.dependencies.create", "asset", asset_id)
        return dependency

    return await idempotency_keys.run(db, key, caller, add)


@router.delete("/{asset_id}/dependencies/{upstream_asset_id}", status_code=204, response_class=Response)
async def remove_dependency(
    caller: EditorCaller,
    asset_id: uuid.UUID,
    upstream_asset_id: uuid.UUID,
    db: SessionDep,
    audit: AuditDep,
    param_name: str | None = None,
) -> Response:
    await service.remove_dependency(db, caller, asset_id, upstream_asset_id, param_name)
    await audit("assets.dependencies.delete", "asset", asset_id)
    return Response(status_code=204)
