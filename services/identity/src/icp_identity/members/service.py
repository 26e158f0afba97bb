"""Membership use cases, scoped to the caller's active organisation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import InvalidInput, NotFound
from icp_common.identity import Identity

from .. import events, scope
from . import repository


async def list_members(session: AsyncSession, identity: Identity) -> list[Row[*tuple[Any, ...]]]:
    return await repository.list_with_profiles(session, scope.org_id(identity))


async def remove_member(session: AsyncSession, identity: Identity, user_id: uuid.UUID) -> None:
    """Remove a member of the caller's organisation; their next request is refused (403)."""
    org_id = scope.org_id(identity)
    if identity.user_id == str(user_id):
        raise InvalidInput("Cannot remove yourself")
    if not await repository.remove(session, org_id, user_id):
        raise NotFound("Member not found")
    await events.publish(
        session,
        events.MEMBERSHIP_REMOVED,
        events.MembershipRemoved(event_id=events.new_event_id(), org_id=org_id, user_id=user_id),
    )


async def role_of(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await repository.get_role(session, org_id, user_id)


async def add_if_absent(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> bool:
    """Add a membership; an existing membership (and its role) is kept. True when added."""
    return await repository.add_if_absent(session, org_id, user_id, role)
