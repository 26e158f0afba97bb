"""Contract with the publisher: what the identity service puts on the wire is what we decode.

The only place notifications touches identity's code, and only in a test (services share no
code at run time)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from icp_notifications.invitations.schemas import InvitationCreated


def test_identity_invitation_event_decodes():
    events = pytest.importorskip("icp_identity.events")
    published = events.InvitationCreated(
        event_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        org_name="Acme",
        email="bob@example.com",
        role="viewer",
        inviter_name="Alice",
        inviter_email="alice@example.com",
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    wire = json.dumps(published.model_dump(mode="json"))
    decoded = InvitationCreated.model_validate_json(wire)
    assert decoded.model_dump(mode="json") == json.loads(wire)
    assert events.INVITATION_CREATED == "identity.invitation.created"
