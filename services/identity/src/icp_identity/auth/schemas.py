"""Auth request/response models."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..organisations.schemas import OrganisationRead


class AuthUserRead(BaseModel):
    """`{id, email, name, avatar_url, role, organisation, last_organisation_id}`.

    `role` is the caller's role in the active organisation, null without one (the reference's
    literal "viewer" there is listed as a bug in spec 12.2)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    avatar_url: str | None
    role: str | None
    organisation: OrganisationRead | None
    last_organisation_id: uuid.UUID | None


class SwitchOrganisation(BaseModel):
    organisation_id: uuid.UUID


class AcceptInvitation(BaseModel):
    token: str


class AcceptStatus(BaseModel):
    status: Literal["ok", "already_member"]
