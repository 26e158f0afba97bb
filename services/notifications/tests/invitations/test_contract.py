"""Contract with the publisher: identity publishes and notifications decodes the one shared model
(icp_common.contracts.InvitationCreated; its wire format is checked against captured payloads in
libs/common/tests/test_contracts.py).

The only place notifications touches identity's code, and only in a test (services share no
code at run time)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from icp_common import contracts
from icp_notifications.invitations.schemas import InvitationCreated
from icp_notifications.settings import ConsumerSettings


def test_identity_invitation_event_decodes():
    events = pytest.importorskip("icp_identity.events")
    assert events.InvitationCreated is InvitationCreated is contracts.InvitationCreated
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
    wire = json.dumps(published.payload())
    decoded = InvitationCreated.decode(wire.encode())
    assert decoded.payload() == json.loads(wire)
    assert events.INVITATION_CREATED == ConsumerSettings().subject == "identity.invitation.created"
