"""Messages of the invitation flow: the event we consume (`identity.invitation.created`) and the
dead letter we publish, both shared contracts (icp_common.contracts: identity publishes the same
model, so the wire format is defined once). Unknown fields are ignored so that identity can add
fields without breaking us; a missing or malformed required field makes the message poison.
"""

from __future__ import annotations

from icp_common.contracts import DEAD_LETTER_INVITATION, DeadLetter, InvitationCreated

KIND = DEAD_LETTER_INVITATION

__all__ = ["KIND", "DeadLetter", "InvitationCreated"]
