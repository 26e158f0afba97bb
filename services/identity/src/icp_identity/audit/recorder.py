"""Identity's own audit entries: written straight into `audit_entries` in the transaction of the
change (identity owns the table; no round trip through NATS)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from icp_common.audit import Outcome, denied_action, denied_target, new_entry
from icp_common.db import unit_of_work
from icp_common.identity import Identity

from ..profiles.models import Profile
from . import store

log = logging.getLogger(__name__)


async def record(
    session: AsyncSession,
    identity: Identity,
    connection: HTTPConnection | None,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None,
    *,
    outcome: Outcome = "success",
    org_id: str | uuid.UUID | None = None,
    actor: Mapping[str, Any] | None = None,
) -> None:
    entry = new_entry(identity, connection, action, target_type, target_id, outcome=outcome, org_id=org_id, actor=actor)
    await store.store(session, [entry])


def user_actor(user_id: uuid.UUID | str | None, email: str | None) -> dict[str, Any]:
    """A user named explicitly (a sign-in: the caller is anonymous until it succeeds)."""
    return {"type": "user", "id": str(user_id) if user_id else None, "email": email}


async def record_denied(connection: HTTPConnection, identity: Identity) -> None:
    """`app.state.audit_denied`: a refused write (403), in its own short transaction."""
    sessions = connection.app.state.resources.sessions
    if sessions is None:
        return
    target_type, target_id = denied_target(connection)
    async with unit_of_work(sessions) as session:
        await record(session, identity, connection, denied_action(connection), target_type, target_id, outcome="denied")


async def record_sign_in(
    session: AsyncSession,
    connection: HTTPConnection,
    method: str,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    outcome: Outcome = "success",
) -> None:
    """A sign-in (`auth.sign_in`) or a failed one (`auth.sign_in_failed`, outcome "denied"),
    recorded in the organisation the user lands in (their last one). A failure for an unknown
    user or e-mail belongs to no organisation: stored, but no organisation's log shows it."""
    profile = None
    if user_id is not None:
        profile = await session.get(Profile, user_id)
    elif email:
        profile = await session.scalar(select(Profile).where(func.lower(Profile.email) == email.lower()).limit(1))
    org_id = profile.last_organisation_id if profile is not None else None
    action = "auth.sign_in" if outcome == "success" else "auth.sign_in_failed"
    actor = user_actor(profile.id if profile is not None else user_id, email)
    await record(
        session,
        Identity.anonymous(),
        connection,
        action,
        "sign_in_method",
        method,
        outcome=outcome,
        org_id=org_id,
        actor=actor,
    )


async def record_failed_sign_in(connection: HTTPConnection, method: str, email: str | None) -> None:
    """A refused sign-in, in its own transaction (the sign-in's own rolled back); never fails
    the answer."""
    try:
        async with unit_of_work(connection.app.state.resources.sessions) as session:
            await record_sign_in(session, connection, method, user_id=None, email=email, outcome="denied")
    except Exception:
        log.exception("could not record a failed sign-in in the audit log")


async def last_organisation(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(select(Profile.last_organisation_id).where(Profile.id == user_id))
