"""Queries on `organisations` (flush, never commit)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..members.models import Membership
from .models import Organisation


async def get(session: AsyncSession, org_id: uuid.UUID) -> Organisation | None:
    return await session.get(Organisation, org_id)


async def read(conn: AsyncConnection, org_id: uuid.UUID) -> Organisation | None:
    """The organisation in one statement on a plain connection (no ORM session, no transaction
    of its own in autocommit mode): for `/api/auth/me`, on the path of every page load."""
    stmt = select(Organisation.id, Organisation.name, Organisation.created_at).where(Organisation.id == org_id)
    row = (await conn.execute(stmt)).one_or_none()
    return Organisation(id=row.id, name=row.name, created_at=row.created_at) if row is not None else None


async def get_for_member(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> Organisation | None:
    """The organisation if `user_id` is a member of it."""
    stmt = (
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Organisation.id == org_id, Membership.user_id == user_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add(session: AsyncSession, name: str) -> Organisation:
    org = Organisation(name=name)
    session.add(org)
    await session.flush()
    return org


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> list[Organisation]:
    stmt = (
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.user_id == user_id)
        .order_by(Organisation.created_at, Organisation.id)
    )
    return list((await session.execute(stmt)).scalars())
