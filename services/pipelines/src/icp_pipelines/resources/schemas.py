"""Resource request/response models (spec 2.2, 2.7)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from ..formats import DbTime


class ResourceCreate(BaseModel):
    kind: str
    key: str
    name: str
    data: dict[str, Any]
    encrypted: bool = False


class ResourceUpdate(BaseModel):
    """Same body as POST; an omitted `encrypted` keeps the stored flag (the reference reset it)."""

    kind: str
    key: str
    name: str
    data: dict[str, Any]
    encrypted: bool | None = None


class ResourceRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    kind: str
    key: str
    name: str
    encrypted: bool
    created_at: DbTime
    updated_at: DbTime


class ResourceDetail(ResourceRead):
    data: dict[str, Any]
