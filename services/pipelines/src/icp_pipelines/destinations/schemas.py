"""Destination request/response models (spec 2.2, 2.9)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from ..formats import DbTime


class DestinationCreate(BaseModel):
    key: str
    name: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, uuid.UUID] | None = None


class DestinationUpdate(BaseModel):
    """`key` is required but ignored; null/omitted fields keep their values; `resources: {}` clears."""

    key: str
    name: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, uuid.UUID] | None = None


class DestinationRead(BaseModel):
    id: uuid.UUID
    key: str
    name: str | None
    config: dict[str, Any] | None
    resources: dict[str, uuid.UUID]
    created_at: DbTime
