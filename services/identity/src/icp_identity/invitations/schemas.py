"""Invitation request/response models; the token is never part of a response."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

InvitationRole = Literal["viewer", "editor", "admin"]


class InvitationCreate(BaseModel):
    email: str = Field(max_length=320)
    role: InvitationRole = "viewer"

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError("value is not a valid e-mail address")
        return value


class InvitationRead(BaseModel):
    """`{id, email, role, created_at, expires_at}` (ISO-8601 with `T` and `Z`)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: str
    created_at: datetime | None
    expires_at: datetime
