"""Messages of the invitation flow: the event we consume and the dead letter we publish.

`InvitationCreated` mirrors the identity service's event (icp_identity.events.InvitationCreated;
services share no code, only the wire format). Unknown fields are ignored so that identity can
add fields without breaking us; a missing or malformed required field makes the message poison.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

KIND = "invitation"


class InvitationCreated(BaseModel):
    """`identity.invitation.created`: a new invitation (a resend is a new invitation too)."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    org_name: str = ""
    email: str = Field(min_length=1, max_length=320)
    role: str = ""
    inviter_name: str = ""
    inviter_email: str = ""
    token: str = Field(min_length=1, max_length=512)
    expires_at: AwareDatetime
    accept_url_path: str = ""


class DeadLetter(BaseModel):
    """Published to `<dead-letter prefix>.invitation` when an e-mail cannot be delivered.

    The invitation token is deliberately left out (dead letters are for operators; the way to
    retry is to resend the invitation, which mails a new token)."""

    event_id: uuid.UUID
    kind: str = KIND
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    recipient: str
    attempts: int
    error: str
    failed_at: datetime
