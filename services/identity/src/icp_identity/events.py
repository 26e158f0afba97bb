"""Events the identity service publishes (through its outbox, stream IDENTITY, subjects identity.>;
models in icp_common.contracts).

Each payload is JSON with an `event_id` that is also the NATS message id (`Nats-Msg-Id`), so
consumers can de-duplicate. Published in the same transaction as the state change.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

# The events and their subjects are shared contracts (consumed by notifications and the gateway).
from icp_common.contracts import (
    INVITATION_CREATED,
    MEMBERSHIP_REMOVED,
    SESSION_REVOKED,
    SESSION_SWITCHED,
    TOKEN_REVOKED,
    InvitationCreated,
    MembershipRemoved,
    SessionRevoked,
    SessionSwitched,
    TokenRevoked,
)

from .db import outbox

Event = InvitationCreated | MembershipRemoved | SessionRevoked | SessionSwitched | TokenRevoked

__all__ = [
    "INVITATION_CREATED",
    "MEMBERSHIP_REMOVED",
    "SESSION_REVOKED",
    "SESSION_SWITCHED",
    "TOKEN_REVOKED",
    "InvitationCreated",
    "MembershipRemoved",
    "SessionRevoked",
    "SessionSwitched",
    "TokenRevoked",
    "new_event_id",
    "publish",
]


async def publish(session: AsyncSession, subject: str, event: Event) -> None:
    """Write `event` to the outbox in the caller's transaction (message id = event_id)."""
    await outbox.enqueue(session, subject, event.payload(), msg_id=event.event_id)


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()
