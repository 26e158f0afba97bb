"""Organisation use cases."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import NotFound
from icp_common.identity import Identity

from .. import scope
from ..members import service as members_service
from ..profiles import service as profiles_service
from ..sessions import service as sessions_service
from . import repository
from .models import Organisation


async def create(session: AsyncSession, identity: Identity, name: str) -> Organisation:
    """Create an organisation with the caller as admin and switch the caller's session to it."""
    user_id = scope.user_id(identity)
    org = await repository.add(session, name)
    await members_service.add_if_absent(session, org.id, user_id, "admin")
    await enter(session, identity, org.id)
    return org


async def enter(session: AsyncSession, identity: Identity, org_id: uuid.UUID) -> None:
    """Make `org_id` the caller's active (and last used) organisation; membership is checked by the caller."""
    user_id = scope.user_id(identity)
    await sessions_service.switch_organisation(session, user_id, scope.session_id(identity), org_id)
    await profiles_service.set_last_organisation(session, user_id, org_id)


async def list_mine(session: AsyncSession, identity: Identity) -> list[Organisation]:
    return await repository.list_for_user(session, scope.user_id(identity))


async def get(session: AsyncSession, org_id: uuid.UUID) -> Organisation | None:
    return await repository.get(session, org_id)


async def get_visible(session: AsyncSession, identity: Identity, org_id: uuid.UUID) -> Organisation:
    """An organisation the caller may see: one they are a member of (the system sees all)."""
    if identity.state == "system":
        org = await repository.get(session, org_id)
    else:
        org = await repository.get_for_member(session, org_id, scope.user_id(identity))
    if org is None:
        raise NotFound("Organisation not found")
    return org
