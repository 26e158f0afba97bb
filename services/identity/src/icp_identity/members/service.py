"""Membership use cases, scoped to the caller's active organisation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import Conflict, Forbidden, InvalidInput, NotFound

from .. import events
from ..tokens import repository as tokens_repository
from . import repository


async def list_members(session: AsyncSession, caller: Member) -> list[Row[*tuple[Any, ...]]]:
    return await repository.list_with_profiles(session, caller.org_id)


async def remove_member(session: AsyncSession, caller: Member, user_id: uuid.UUID) -> None:
    """Remove a member of the caller's organisation; their next request is refused (403).

    The caller's admin role was checked on a snapshot taken before this transaction: two admins
    removing each other at the same moment would both pass and leave nobody. So the
    organisation's memberships are locked and the caller's role is checked again under the lock;
    the organisation always keeps an admin."""
    org_id = caller.org_id
    if caller.user_id == user_id:
        raise InvalidInput("Cannot remove yourself")
    roles = await repository.lock_roles(session, org_id)
    if not caller.is_system:
        caller_role = roles.get(caller.user)
        if caller_role is None:
            raise Forbidden("Not a member of this organisation")
        if caller_role != "admin":
            raise Forbidden("Requires admin role or higher")
    if user_id not in roles:
        raise NotFound("Member not found")
    if roles[user_id] == "admin" and list(roles.values()).count("admin") == 1:
        raise Conflict("Cannot remove the last admin of the organisation")
    await repository.remove(session, org_id, user_id)
    await tokens_repository.revoke_of_member(session, org_id, user_id)
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
