"""Organisation request/response models (JSON field names of the public contract)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OrganisationCreate(BaseModel):
    name: str = Field(max_length=200)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # The reference accepts "": an organisation nobody can tell apart in the UI's switcher.
        if not value.strip():
            raise ValueError("name must not be empty")
        return value


class OrganisationRead(BaseModel):
    """`{id, name, created_at}`; `created_at` is ISO-8601 with `T` and `Z`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime | None
