"""API token use cases: create, list and revoke (sessions only: a token cannot manage tokens),
and resolve a raw `ilp_` token into the identity it acts as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from icp_common.caller import Member, Role
from icp_common.errors import Forbidden, NotFound
from icp_common.identity import ROLE_RANK, Identity

from .. import events
from ..security import API_TOKEN_PREFIX, MAX_TOKEN_LENGTH, hash_token, new_api_token
from . import repository
from .models import ApiToken

PREFIX_LENGTH = 12  # `ilp_` and 8 characters: enough to tell tokens apart in a list
INSUFFICIENT = "Insufficient permissions"


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    token: str  # the secret: shown once, never stored


async def create(
    session: AsyncSession,
    caller: Member,
    *,
    name: str,
    role: str,
    expires_in_days: int | None,
    service_account: bool,
) -> NewToken:
    """A token acting with `role` (at most the caller's own); a service account or a token that
    never expires only for admins."""
    caller.refuse_token()
    is_admin = caller.role == Role.ADMIN
    if ROLE_RANK[role] > ROLE_RANK[caller.role.value]:
        raise Forbidden(INSUFFICIENT)
    if (service_account or expires_in_days is None) and not is_admin:
        raise Forbidden(INSUFFICIENT)
    token = new_api_token()
    row = await repository.create(
        session,
        org_id=caller.org_id,
        user_id=None if service_account else caller.user,
        created_by=caller.user,
        service_account=service_account,
        name=name,
        role=role,
        token_hash=hash_token(token),
        token_prefix=token[:PREFIX_LENGTH],
        lifetime=None if expires_in_days is None else timedelta(days=expires_in_days),
    )
    return NewToken(row=row, token=token)


async def list_tokens(session: AsyncSession, caller: Member) -> list[ApiToken]:
    """The caller's tokens in the active organisation; an admin's: every token of it."""
    caller.refuse_token()
    return await repository.list_live(session, caller.org_id, None if caller.role == Role.ADMIN else caller.user)


async def revoke(session: AsyncSession, caller: Member, token_id: uuid.UUID | None) -> None:
    """Revoke a token of the caller (an admin: any of the organisation); 404 for anything else."""
    caller.refuse_token()
    owner = None if caller.role == Role.ADMIN else caller.user
    if token_id is None or not await repository.revoke(session, caller.org_id, token_id, owner):
        raise NotFound("Token not found")
    await events.publish(
        session,
        events.TOKEN_REVOKED,
        events.TokenRevoked(event_id=events.new_event_id(), org_id=caller.org_id, token_id=token_id),
    )


async def authenticate_until(conn: AsyncSession | AsyncConnection, token: str) -> tuple[Identity, timedelta | None]:
    """The identity a raw API token acts as, with how long it has left (None: never expires).
    Invalid when unknown, revoked, expired, or its owner is no longer a member."""
    invalid = Identity(state="invalid", token_id="")  # "Invalid or expired token"
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return invalid, None
    row = await repository.resolve(conn, hash_token(token))
    identity = None if row is None else _identity(row)
    if identity is None:
        return invalid, None
    return identity, row.expires_in if row is not None else None


def _identity(row: Any) -> Identity | None:
    org_id = str(row.organisation_id)
    if row.service_account:  # the organisation's own principal: the token's role
        return Identity(
            state="ok",
            user_id=str(row.id),
            email="",
            name=row.token_name,
            org_id=org_id,
            org_exists=True,
            role=row.role,
            token_id=str(row.id),
            service_account=True,
        )
    if row.member_role is None:  # the owner left the organisation
        return None
    role = min(row.role, row.member_role, key=lambda r: ROLE_RANK.get(r, 0))
    return Identity(
        state="ok",
        user_id=str(row.user_id),
        email=row.email,
        name=row.name,
        avatar_url=row.avatar_url,
        org_id=org_id,
        org_exists=True,
        role=role,
        last_organisation_id=None if row.last_organisation_id is None else str(row.last_organisation_id),
        token_id=str(row.id),
    )
