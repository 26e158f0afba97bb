"""The invitation e-mail of spec 10, rendered without any infrastructure."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from icp_notifications.invitations.rendering import (
    InvalidMessage,
    accept_url,
    build_message,
    expiry_note,
    recipient_address,
    render_invitation,
)
from icp_notifications.invitations.schemas import InvitationCreated

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def event(**overrides):
    values = {
        "event_id": uuid.uuid4(),
        "invitation_id": uuid.uuid4(),
        "org_id": uuid.uuid4(),
        "org_name": "Acme",
        "email": "bob@example.com",
        "role": "viewer",
        "inviter_name": "Alice",
        "inviter_email": "alice@example.com",
        "expires_at": NOW + timedelta(days=7),
    }
    values.update(overrides)
    return InvitationCreated(**values)


def test_accept_url_uses_the_configured_public_url():
    assert accept_url("https://app.example.com/", "abc") == "https://app.example.com/invite/abc"
    assert accept_url("http://127.0.0.1:8080", "a/b?c") == "http://127.0.0.1:8080/invite/a%2Fb%3Fc"


def test_text_and_html_parts():
    mail = render_invitation(event(), token="tok_EN-123", public_url="https://app.example.com", now=NOW)
    assert mail.subject == "You've been invited to join Acme on Interloper"
    assert mail.text == (
        "Alice has invited you to join the Acme organisation on Interloper.\n\n"
        "Click the link below to accept the invitation:\n"
        "https://app.example.com/invite/tok_EN-123\n\n"
        "This invitation expires in 7 days.\n"
    )
    assert "<h1" in mail.html and "You've been invited to join Acme</h1>" in mail.html
    assert 'href="https://app.example.com/invite/tok_EN-123"' in mail.html


@pytest.mark.parametrize(
    ("org_name", "inviter_name", "inviter_email", "org", "inviter"),
    [
        ("", "", "alice@example.com", "Unknown", "alice@example.com"),
        ("  ", "Alice", "", "Unknown", "Alice"),
        ("Acme", "", "", "Acme", "Someone"),
    ],
)
def test_fallbacks(org_name, inviter_name, inviter_email, org, inviter):
    mail = render_invitation(
        event(org_name=org_name, inviter_name=inviter_name, inviter_email=inviter_email),
        token="tok_EN-123",
        public_url="https://x",
        now=NOW,
    )
    assert mail.text.startswith(f"{inviter} has invited you to join the {org} organisation on Interloper.")


def test_html_autoescaping():
    mail = render_invitation(
        event(org_name="<i>A</i>&'", inviter_name='"><script>x</script>'),
        token="tok_EN-123",
        public_url="https://x",
        now=NOW,
    )
    assert "<i>" not in mail.html and "<script>" not in mail.html
    assert "&lt;i&gt;A&lt;/i&gt;&amp;&#39;" in mail.html
    assert "&#34;&gt;&lt;script&gt;x&lt;/script&gt;" in mail.html
    assert "<i>A</i>&'" in mail.text  # plain text stays as typed


def test_control_characters_never_reach_the_subject():
    mail = render_invitation(event(org_name="A\r\nB\tC\x00D"), token="tok_EN-123", public_url="https://x", now=NOW)
    assert mail.subject == "You've been invited to join A B C D on Interloper"


@pytest.mark.parametrize(
    ("delta", "note"),
    [
        (timedelta(days=7), "This invitation expires in 7 days."),
        (timedelta(days=6, hours=23), "This invitation expires in 7 days."),
        (timedelta(days=2), "This invitation expires in 2 days."),
        (timedelta(hours=20), "This invitation expires in 1 day."),
    ],
)
def test_expiry_note(delta, note):
    assert expiry_note(NOW + delta, NOW) == note


@pytest.mark.parametrize(
    "address", ["x", "", "a b@example.com", "a@b@c", "bob@example.com\r\nBcc: x@y", "@example.com"]
)
def test_invalid_recipients(address):
    with pytest.raises(InvalidMessage):
        recipient_address(address)


def test_message_structure():
    mail = render_invitation(event(org_name="Zürich Ätna"), token="tok_EN-123", public_url="https://x", now=NOW)
    message = build_message(mail, from_addr="noreply@interloper.dev", message_id="<m@interloper.dev>", now=NOW)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "You've been invited to join Zürich Ätna on Interloper"
    assert message["To"] == "bob@example.com"
    assert message["Message-ID"] == "<m@interloper.dev>"
    message.as_bytes()  # serialisable (non-ASCII subject is encoded)
