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
    """`identity.invitation.created`: a new invitation (a resend is a new invitation too).

    It carries no token: the accept link comes from identity over gRPC (IssueInvitationLink)
    when the e-mail is sent, so a token in a message (an old event, or a forged one) is ignored."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    org_name: str = ""
    email: str = Field(min_length=1, max_length=320)
    role: str = ""
    inviter_name: str = ""
    inviter_email: str = ""
    expires_at: AwareDatetime


class DeadLetter(BaseModel):
    """Published to `<dead-letter prefix>.invitation` when an e-mail cannot be delivered.

    No invitation token (dead letters are for operators; the way to retry is to resend the
    invitation, which mails a new link)."""

    event_id: uuid.UUID
    kind: str = KIND
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    recipient: str
    attempts: int
    error: str
    failed_at: datetime
