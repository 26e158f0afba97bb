"""Source request/response models (spec 2.2, 2.8; `destination_ids` per the web UI contract)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator

from ..destinations.schemas import DestinationRead
from ..formats import DbTime


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


OptionalId = Annotated[uuid.UUID | None, BeforeValidator(_blank_to_none)]


class SourceWrite(BaseModel):
    """POST and PUT body. On PUT `key` is required but ignored and null fields keep their values."""

    key: str
    name: str
    config: dict[str, Any] | None = None
    resources: dict[str, uuid.UUID] | None = None
    asset_keys: list[str] | None = None
    destination_ids: list[uuid.UUID] | None = None
    cross_deps: dict[str, dict[str, OptionalId]] | None = None


class SourceAssetRead(BaseModel):
    id: uuid.UUID
    key: str
    materializable: bool


class SourceRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    key: str
    name: str
    config: dict[str, Any] | None
    resources: dict[str, uuid.UUID]
    destinations: list[DestinationRead]
    destination_ids: list[uuid.UUID]
    assets: list[SourceAssetRead]
    created_at: DbTime
