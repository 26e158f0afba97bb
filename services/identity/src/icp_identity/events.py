"""Events the identity service publishes (through its outbox, stream IDENTITY, subjects identity.>).

Each payload is JSON with an `event_id` that is also the NATS message id (`Nats-Msg-Id`), so
consumers can de-duplicate. Published in the same transaction as the state change.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from .db import outbox

INVITATION_CREATED = "identity.invitation.created"
MEMBERSHIP_REMOVED = "identity.membership.removed"
SESSION_REVOKED = "identity.session.revoked"
SESSION_SWITCHED = "identity.session.switched"


class InvitationCreated(BaseModel):
    """A new invitation (also sent for a resend: a resend is a new invitation).

    No token: the notifications service gets the accept link over gRPC (IssueInvitationLink)
    when it mails it, so nothing in the (week-long) IDENTITY stream opens an invitation."""

    event_id: uuid.UUID
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    org_name: str
    email: str
    role: str
    inviter_name: str  # the inviter's name, or their e-mail when they have no name
    inviter_email: str
    expires_at: datetime


class MembershipRemoved(BaseModel):
    """A member was removed from an organisation (gateways close that user's sockets of the org)."""

    event_id: uuid.UUID
    org_id: uuid.UUID
    user_id: uuid.UUID


class SessionRevoked(BaseModel):
    """Every session of the user was revoked (logout)."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    session_ids: list[uuid.UUID]


class SessionSwitched(BaseModel):
    """A session's active organisation changed (create org, switch-org, accept-invite)."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID
    org_id: uuid.UUID


async def publish(session: AsyncSession, subject: str, event: BaseModel) -> None:
    """Write `event` to the outbox in the caller's transaction (message id = event_id)."""
    payload: dict[str, Any] = event.model_dump(mode="json")
    await outbox.enqueue(session, subject, payload, msg_id=uuid.UUID(str(payload["event_id"])))


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()
