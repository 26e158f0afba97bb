"""Organisation request/response models (JSON field names of the public contract)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class OrganisationCreate(BaseModel):
    name: str = Field(max_length=200)


class OrganisationRead(BaseModel):
    """`{id, name, created_at}`; `created_at` is ISO-8601 with `T` and `Z`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime | None
