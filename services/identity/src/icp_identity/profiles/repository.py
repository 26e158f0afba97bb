"""Queries on `profiles` (flush, never commit)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Profile


async def get(session: AsyncSession, user_id: uuid.UUID) -> Profile | None:
    return await session.get(Profile, user_id)


async def get_by_google_id(session: AsyncSession, google_id: str) -> Profile | None:
    return (await session.execute(select(Profile).where(Profile.google_id == google_id))).scalar_one_or_none()


async def get_by_email(session: AsyncSession, email: str, *, without_google_id: bool = False) -> Profile | None:
    """The oldest profile with this e-mail (case-insensitive)."""
    stmt = select(Profile).where(func.lower(Profile.email) == email.lower())
    if without_google_id:
        stmt = stmt.where(Profile.google_id.is_(None))
    stmt = stmt.order_by(Profile.created_at, Profile.id).limit(1).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def add(
    session: AsyncSession,
    *,
    email: str,
    name: str | None,
    google_id: str | None = None,
    avatar_url: str | None = None,
) -> Profile:
    profile = Profile(email=email, name=name, google_id=google_id, avatar_url=avatar_url)
    session.add(profile)
    await session.flush()  # server defaults (id, created_at) come back through RETURNING
    return profile


async def set_last_organisation(session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID) -> None:
    await session.execute(update(Profile).where(Profile.id == user_id).values(last_organisation_id=org_id))
