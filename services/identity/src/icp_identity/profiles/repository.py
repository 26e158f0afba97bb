"""Queries on `profiles` (flush, never commit)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import OidcIdentity, Profile


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


async def get_oidc_identity(session: AsyncSession, issuer: str, subject: str) -> OidcIdentity | None:
    stmt = select(OidcIdentity).where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
    return (await session.execute(stmt.with_for_update())).scalar_one_or_none()


async def add_oidc_identity(
    session: AsyncSession, profile_id: uuid.UUID, *, issuer: str, subject: str, email: str, email_verified: bool
) -> OidcIdentity:
    identity = OidcIdentity(
        profile_id=profile_id, issuer=issuer, subject=subject, email=email, email_verified=email_verified
    )
    session.add(identity)
    await session.flush()
    return identity


async def has_unverified_oidc_identity(session: AsyncSession, profile_id: uuid.UUID) -> bool:
    stmt = select(OidcIdentity.id).where(OidcIdentity.profile_id == profile_id, OidcIdentity.email_verified.is_(False))
    return (await session.execute(stmt.limit(1))).first() is not None
