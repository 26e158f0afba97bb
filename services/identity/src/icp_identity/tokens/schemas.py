"""API token request/response models (timestamps ISO-8601 with `T` and `Z`, as organisations)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

TokenRole = Literal["viewer", "editor", "admin"]
DEFAULT_EXPIRY_DAYS = 90


class TokenCreate(BaseModel):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    role: TokenRole
    # Absent: 90 days; null: never expires (admins only).
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=365)] | None = DEFAULT_EXPIRY_DAYS
    service_account: StrictBool = False


class TokenRead(BaseModel):
    """`{id, name, role, organisation_id, token_prefix, created_at, expires_at, last_used_at,
    service_account}`: never the secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: str
    organisation_id: uuid.UUID
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    service_account: bool


class TokenCreated(BaseModel):
    """The creation answer: the only time `token` (the secret) is shown."""

    id: uuid.UUID
    name: str
    role: str
    organisation_id: uuid.UUID
    token: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    service_account: bool
