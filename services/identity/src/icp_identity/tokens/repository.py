"""Queries on `api_tokens` (flush, never commit)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .models import ApiToken

# One statement per Authenticate: the live token, its owner's profile and current role, and
# `last_used_at` touched at most once a minute (a data-modifying CTE whose WHERE skips recent
# uses: no write per request; concurrent uses re-check it under the row lock).
_RESOLVE = text(
    """
    WITH hit AS (
        SELECT t.id, t.organisation_id, t.user_id, t.service_account, t.name AS token_name, t.role,
               t.expires_at - now() AS expires_in,
               p.email, p.name, p.avatar_url, p.last_organisation_id, m.role AS member_role
        FROM api_tokens t
        LEFT JOIN profiles p ON p.id = t.user_id
        LEFT JOIN memberships m ON m.organisation_id = t.organisation_id AND m.user_id = t.user_id
        WHERE t.token_hash = :token_hash AND t.revoked_at IS NULL
          AND (t.expires_at IS NULL OR t.expires_at > now())
    ), touched AS (
        UPDATE api_tokens SET last_used_at = now()
        WHERE id = (SELECT id FROM hit)
          AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    )
    SELECT * FROM hit
    """
)


async def resolve(conn: AsyncSession | AsyncConnection, token_hash: str) -> Row[Any] | None:
    row: Row[Any] | None = (await conn.execute(_RESOLVE, {"token_hash": token_hash})).first()
    return row


async def create(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    user_id: uuid.UUID | None,
    created_by: uuid.UUID,
    service_account: bool,
    name: str,
    role: str,
    token_hash: str,
    token_prefix: str,
    lifetime: timedelta | None,
) -> ApiToken:
    stmt = (
        insert(ApiToken)
        .values(
            organisation_id=org_id,
            user_id=user_id,
            created_by=created_by,
            service_account=service_account,
            name=name,
            role=role,
            token_hash=token_hash,
            token_prefix=token_prefix,
            expires_at=None if lifetime is None else func.now() + lifetime,
        )
        .returning(ApiToken)
    )
    row: ApiToken = (await session.execute(stmt)).scalar_one()
    return row


async def list_live(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID | None) -> list[ApiToken]:
    """The organisation's unrevoked tokens (only `user_id`'s when given), newest first."""
    stmt = select(ApiToken).where(ApiToken.organisation_id == org_id, ApiToken.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    stmt = stmt.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    return list((await session.execute(stmt)).scalars())


async def revoke(session: AsyncSession, org_id: uuid.UUID, token_id: uuid.UUID, owner: uuid.UUID | None) -> bool:
    """Revoke a live token of the organisation (only `owner`'s when given). True when revoked."""
    stmt = update(ApiToken).where(
        ApiToken.id == token_id, ApiToken.organisation_id == org_id, ApiToken.revoked_at.is_(None)
    )
    if owner is not None:
        stmt = stmt.where(ApiToken.user_id == owner)
    result = await session.execute(stmt.values(revoked_at=func.now()).returning(ApiToken.id))
    return result.first() is not None


async def revoke_of_member(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A removed member's own tokens of the organisation end with the membership (service
    accounts it created stay: they belong to the organisation)."""
    await session.execute(
        update(ApiToken)
        .where(
            ApiToken.organisation_id == org_id,
            ApiToken.user_id == user_id,
            ApiToken.service_account.is_(False),
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
