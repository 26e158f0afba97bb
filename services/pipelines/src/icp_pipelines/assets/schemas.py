"""Asset and dependency request/response models (spec 2.2, 2.13)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from ..destinations.schemas import DestinationRead
from ..formats import DbTime


class AssetCreate(BaseModel):
    key: str
    config: dict[str, Any] | None = None
    resources: dict[str, uuid.UUID] | None = None
    destination_ids: list[uuid.UUID] | None = None


class AssetUpdate(BaseModel):
    """Only non-null fields are applied (also to source-owned assets: per-asset overrides)."""

    materializable: bool | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, uuid.UUID] | None = None
    destination_ids: list[uuid.UUID] | None = None


class AssetRead(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID | None
    org_id: uuid.UUID
    key: str
    materializable: bool
    config: dict[str, Any] | None
    resources: dict[str, uuid.UUID]
    destinations: list[DestinationRead]
    created_at: DbTime


class DependencyCreate(BaseModel):
    upstream_asset_id: uuid.UUID
    param_name: str


class DependencyRead(BaseModel):
    asset_id: uuid.UUID
    upstream_asset_id: uuid.UUID
