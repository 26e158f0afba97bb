"""Member response model."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class MemberRead(BaseModel):
    """`{id (profile id), email, name, avatar_url, role}`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    avatar_url: str | None
    role: str
