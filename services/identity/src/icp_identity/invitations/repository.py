"""Queries on `invitations` (flush, never commit). Every function takes the organisation id,
except the look-up by token hash (the token itself designates the organisation)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Invitation, InvitationSend


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


async def lock_sending(session: AsyncSession, org_id: uuid.UUID, email: str) -> None:
    """Serialise invitations of one organisation, then of one address (always in this order, so
    no deadlock), until the transaction ends: counts and duplicates are checked race-free."""
    for key in (f"invitations:org:{org_id}", f"invitations:address:{email.lower()}"):
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


async def recent_sends(
    session: AsyncSession, window: timedelta, *, org_id: uuid.UUID | None = None, email: str | None = None
) -> tuple[int, float]:
    """Sends of the organisation (or to the address) within the window, and the seconds until
    the oldest of them leaves it."""
    where = (
        InvitationSend.organisation_id == org_id
        if org_id is not None
        else InvitationSend.email == (email or "").lower()
    )
    stmt = select(
        func.count(),
        func.coalesce(func.extract("epoch", func.min(InvitationSend.created_at) + window - func.now()), 0),
    ).where(where, InvitationSend.created_at > func.now() - window)
    count, wait = (await session.execute(stmt)).one()
    return int(count), float(wait)


async def record_send(session: AsyncSession, org_id: uuid.UUID, email: str, window: timedelta) -> None:
    """Count one send, and forget this organisation's and this address's sends older than the window."""
    email = email.lower()
    await session.execute(
        delete(InvitationSend).where(
            or_(InvitationSend.organisation_id == org_id, InvitationSend.email == email),
            InvitationSend.created_at <= func.now() - window,
        )
    )
    await session.execute(insert(InvitationSend).values(organisation_id=org_id, email=email))


async def delete_for_address(session: AsyncSession, org_id: uuid.UUID, email: str) -> None:
    """The organisation's invitations to this address (case-insensitive), pending or expired."""
    await session.execute(
        delete(Invitation).where(Invitation.organisation_id == org_id, func.lower(Invitation.email) == email.lower())
    )
