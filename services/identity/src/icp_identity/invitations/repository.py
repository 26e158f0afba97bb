"""Queries on `invitations` (flush, never commit). Every function takes the organisation id,
except the look-up by token hash (the token itself designates the organisation)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Invitation


async def list_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[Invitation]:
    stmt = select(Invitation).where(Invitation.organisation_id == org_id).order_by(Invitation.created_at, Invitation.id)
    return list((await session.execute(stmt)).scalars())


async def get(session: AsyncSession, org_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.organisation_id == org_id, Invitation.id == invitation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def add(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    email: str,
    role: str,
    token_hash: str,
    invited_by: uuid.UUID,
    lifetime: timedelta,
) -> Invitation:
    stmt = (
        insert(Invitation)
        .values(
            organisation_id=org_id,
            email=email,
            role=role,
            token_hash=token_hash,
            invited_by=invited_by,
            expires_at=func.now() + lifetime,
        )
        .returning(Invitation)
    )
    return (await session.execute(stmt)).scalar_one()


async def delete_one(session: AsyncSession, org_id: uuid.UUID, invitation_id: uuid.UUID) -> bool:
    stmt = (
        delete(Invitation)
        .where(Invitation.organisation_id == org_id, Invitation.id == invitation_id)
        .returning(Invitation.id)
    )
    return (await session.execute(stmt)).first() is not None


async def claim_live_by_token_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    """The unexpired invitation with this token hash, deleted (single use) in the same statement.

    Two concurrent acceptances of one token cannot both succeed: the second deletes nothing."""
    stmt = (
        delete(Invitation)
        .where(Invitation.token_hash == token_hash, Invitation.expires_at > func.now())
        .returning(Invitation)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
