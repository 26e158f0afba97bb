"""Queries on `sessions` (flush, never commit)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..members.models import Membership
from ..organisations.models import Organisation
from ..profiles.models import Profile
from .models import Session

_AUTHENTICATE = (
    select(
        Session.id.label("session_id"),
        Session.user_id,
        Session.organisation_id,
        Profile.email,
        Profile.name,
        Profile.avatar_url,
        Profile.last_organisation_id,
        Organisation.id.is_not(None).label("org_exists"),
        Membership.role,
        (Session.expires_at - func.now()).label("expires_in"),  # the gateway caches no longer
    )
    .select_from(Session)
    .join(Profile, Profile.id == Session.user_id)
    .outerjoin(Organisation, Organisation.id == Session.organisation_id)
    .outerjoin(
        Membership,
        and_(Membership.organisation_id == Session.organisation_id, Membership.user_id == Session.user_id),
    )
)


async def resolve(session: AsyncSession | AsyncConnection, token_hash: str) -> Row[*tuple[Any, ...]] | None:
    """The live session with this token hash, its user, active organisation and role: ONE query."""
    stmt = _AUTHENTICATE.where(Session.token_hash == token_hash, Session.expires_at > func.now())
    row: Row[*tuple[Any, ...]] | None = (await session.execute(stmt)).first()
    return row


async def create(session: AsyncSession, user_id: uuid.UUID, token_hash: str, lifetime: timedelta) -> Session:
    row = (
        await session.execute(
            insert(Session)
            .values(user_id=user_id, token_hash=token_hash, expires_at=func.now() + lifetime)
            .returning(Session)
        )
    ).scalar_one()
    return row


async def delete_expired_of_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(Session).where(Session.user_id == user_id, Session.expires_at <= func.now()))


async def delete_all_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    result = await session.execute(delete(Session).where(Session.user_id == user_id).returning(Session.id))
    return list(result.scalars())


async def set_organisation(session: AsyncSession, session_id: uuid.UUID, org_id: uuid.UUID) -> None:
    await session.execute(update(Session).where(Session.id == session_id).values(organisation_id=org_id))
