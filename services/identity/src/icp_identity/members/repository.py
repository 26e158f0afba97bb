"""Queries on `memberships` (flush, never commit). Every function takes the organisation id."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from ..profiles.models import Profile
from .models import Membership


async def get_role(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    stmt = select(Membership.role).where(Membership.organisation_id == org_id, Membership.user_id == user_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_roles(session: AsyncSession, org_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Every membership of the organisation, locked until the transaction ends (in user order,
    so concurrent callers queue instead of deadlocking); rows others deleted meanwhile are gone."""
    stmt = (
        select(Membership.user_id, Membership.role)
        .where(Membership.organisation_id == org_id)
        .order_by(Membership.user_id)
        .with_for_update()
    )
    return {row.user_id: row.role for row in await session.execute(stmt)}


async def add_if_absent(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> bool:
    """Add the membership unless one exists (its role is then kept); True when added."""
    stmt = (
        insert(Membership)
        .values(organisation_id=org_id, user_id=user_id, role=role)
        .on_conflict_do_nothing(index_elements=[Membership.organisation_id, Membership.user_id])
        .returning(Membership.user_id)
    )
    return (await session.execute(stmt)).first() is not None


async def remove(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    stmt = (
        delete(Membership)
        .where(Membership.organisation_id == org_id, Membership.user_id == user_id)
        .returning(Membership.user_id)
    )
    return (await session.execute(stmt)).first() is not None


async def list_with_profiles(session: AsyncSession, org_id: uuid.UUID) -> list[Row[*tuple[Any, ...]]]:
    """Members of the organisation with their profile fields: one query."""
    stmt = (
        select(Profile.id, Profile.email, Profile.name, Profile.avatar_url, Membership.role)
        .join(Membership, Membership.user_id == Profile.id)
        .where(Membership.organisation_id == org_id)
        .order_by(Membership.created_at, Profile.id)
    )
    rows: list[Row[*tuple[Any, ...]]] = list((await session.execute(stmt)).all())
    return rows
