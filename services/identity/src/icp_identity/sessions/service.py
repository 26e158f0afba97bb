"""Session use cases: resolve a token into the caller's identity, open, switch and revoke sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from icp_common.identity import Identity

from .. import events
from ..security import MAX_TOKEN_LENGTH, hash_token, new_session_token
from . import repository


@dataclass(frozen=True)
class NewSession:
    token: str  # raw token: goes to the cookie (or the operator), never stored
    session_id: uuid.UUID
    user_id: uuid.UUID


def _str(value: object) -> str | None:
    return None if value is None else str(value)


async def authenticate(session: AsyncSession | AsyncConnection, token: str | None) -> Identity:
    """The caller behind a raw `session_token`: anonymous (none), invalid (unknown, expired, or
    its profile is gone) or ok with user, session, active organisation and role. One query."""
    return (await authenticate_until(session, token))[0]


async def authenticate_until(
    session: AsyncSession | AsyncConnection, token: str | None
) -> tuple[Identity, timedelta | None]:
    """`authenticate`, with how long the session has left (None unless ok): the gateway's
    session cache never keeps an answer past it."""
    if not token:
        return Identity.anonymous(), None
    if len(token) > MAX_TOKEN_LENGTH:
        return Identity(state="invalid"), None
    row = await repository.resolve(session, hash_token(token))
    if row is None:
        return Identity(state="invalid"), None
    return _identity(row), row.expires_in


def _identity(row: Any) -> Identity:
    return Identity(
        state="ok",
        user_id=str(row.user_id),
        email=row.email,
        name=row.name,
        avatar_url=row.avatar_url,
        session_id=str(row.session_id),
        org_id=_str(row.organisation_id),
        org_exists=bool(row.org_exists),
        role=row.role,
        last_organisation_id=_str(row.last_organisation_id),
    )


async def open_session(session: AsyncSession, user_id: uuid.UUID, lifetime_days: int) -> NewSession:
    """A new session without an active organisation; only the token's hash is stored."""
    await repository.delete_expired_of_user(session, user_id)
    token = new_session_token()
    row = await repository.create(session, user_id, hash_token(token), timedelta(days=lifetime_days))
    return NewSession(token=token, session_id=row.id, user_id=user_id)


async def switch_organisation(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, org_id: uuid.UUID
) -> None:
    """Make `org_id` the session's active organisation (the caller checked membership)."""
    await repository.set_organisation(session, session_id, org_id)
    await events.publish(
        session,
        events.SESSION_SWITCHED,
        events.SessionSwitched(event_id=events.new_event_id(), user_id=user_id, session_id=session_id, org_id=org_id),
    )


async def revoke_all(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete every session of the user (logout signs out every device)."""
    revoked = await repository.delete_all_of_user(session, user_id)
    await events.publish(
        session,
        events.SESSION_REVOKED,
        events.SessionRevoked(event_id=events.new_event_id(), user_id=user_id, session_ids=revoked),
    )
