"""Organisation use cases."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from icp_common.caller import Caller
from icp_common.errors import NotFound

from ..members import service as members_service
from ..profiles import service as profiles_service
from ..sessions import service as sessions_service
from . import repository
from .models import Organisation


async def create(session: AsyncSession, caller: Caller, name: str) -> Organisation:
    """Create an organisation with the caller as admin and switch the caller's session to it."""
    caller.refuse_token()  # a session's act: a token is bound to its organisation
    user_id = caller.user
    org = await repository.add(session, name)
    await members_service.add_if_absent(session, org.id, user_id, "admin")
    await enter(session, caller, org.id)
    return org


async def enter(session: AsyncSession, caller: Caller, org_id: uuid.UUID) -> None:
    """Make `org_id` the caller's active (and last used) organisation; membership is checked by the caller."""
    user_id = caller.user
    await sessions_service.switch_organisation(session, user_id, caller.session, org_id)
    await profiles_service.set_last_organisation(session, user_id, org_id)


async def list_mine(session: AsyncSession, caller: Caller) -> list[Organisation]:
    if caller.identity.is_token:  # a token sees its own organisation, not its owner's others
        org = None if caller.org_id is None else await repository.get(session, caller.org_id)
        return [] if org is None else [org]
    return await repository.list_for_user(session, caller.user)


async def get(session: AsyncSession, org_id: uuid.UUID) -> Organisation | None:
    return await repository.get(session, org_id)


async def read(conn: AsyncConnection, org_id: uuid.UUID) -> Organisation | None:
    return await repository.read(conn, org_id)


async def get_visible(session: AsyncSession, caller: Caller, org_id: uuid.UUID) -> Organisation:
    """An organisation the caller may see: one they are a member of (the system sees all)."""
    if caller.is_system:
        org = await repository.get(session, org_id)
    else:
        org = await repository.get_for_member(session, org_id, caller.user)
    if org is None:
        raise NotFound("Organisation not found")
    return org
