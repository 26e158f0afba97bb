"""Invitation e-mails end to end, through Traefik and the gateway: an admin invites, the
notifications service mails the invitation (from the identity event on NATS) to the stack's mail
catcher, which saves it under <data-dir>/mail/ and prints the accept link in the stack's log;
the invitee accepts with the token from the e-mail's link. A resend mails a new link and the old
one stops working."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from icp_stack.pytest_plugin import StackHandle

LINK = re.compile(r"https?://\S+/invite/([A-Za-z0-9_\-]+)")


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


@pytest.fixture
async def sign_in(base_url: str) -> AsyncIterator[Callable[..., object]]:
    """`await sign_in(email, name=None)`: a client (own cookie jar) signed in through dev login."""
    clients: list[httpx.AsyncClient] = []

    async def do(email: str, name: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False)
        clients.append(client)
        params = {"email": email} | ({"name": name} if name else {})
        r = await client.get("/api/auth/dev-login", params=params)
        assert r.status_code == 302, r.text
        return client

    yield do
    for client in clients:
        await client.aclose()


def mails_to(mail_dir: Path, recipient: str) -> list[tuple[Path, EmailMessage]]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        if message["To"] == recipient:
            found.append((path, message))
    return found


async def wait_for_mails(
    stack: StackHandle, recipient: str, count: int = 1, within: float = 90.0
) -> list[tuple[Path, EmailMessage]]:
    mail_dir = stack.data_dir / "mail"
    deadline = time.monotonic() + within
    found: list[tuple[Path, EmailMessage]] = []
    while time.monotonic() < deadline:
        found = mails_to(mail_dir, recipient) if mail_dir.is_dir() else []
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    components = ", ".join(stack.reload_info()["components"])
    raise AssertionError(
        f"{count} e-mail(s) to {recipient} expected in {mail_dir}, found {len(found)} "
        f"(components: {components}; the launcher must run the mail catcher and point "
        f"INTERLOPER_SMTP_* of notifications at it)\n{stack.log_tail(40)}"
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "both a text and an HTML part"
    return str(text.get_content()), str(html.get_content())


def token_of(text: str, base_url: str) -> str:
    match = LINK.search(text)
    assert match, text
    assert match.group(0) == f"{base_url}/invite/{match.group(1)}", "the link uses INTERLOPER_PUBLIC_URL"
    return match.group(1)


async def test_invitation_email_resend_and_accept(sign_in, stack: StackHandle, base_url: str) -> None:
    owner = await sign_in(unique_email("olivia"), name="Olivia <Owner>")
    org_name = f"Acme <b>{uuid.uuid4().hex[:6]}</b> & Co"
    r = await owner.post("/api/organisations", json={"name": org_name})
    assert r.status_code == 201, r.text
    org = r.json()
    bob_email = unique_email("bob")
    r = await owner.post("/api/organisations/invite", json={"email": bob_email, "role": "editor"})
    assert r.status_code == 201, r.text
    invitation = r.json()

    [(path, message)] = await wait_for_mails(stack, bob_email)
    assert message["Subject"] == f"You've been invited to join {org_name} on Interloper"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert f"Olivia <Owner> has invited you to join the {org_name} organisation on Interloper." in text
    token = token_of(text, base_url)
    assert f'href="{base_url}/invite/{token}"' in html
    assert "<b>" not in html and "&lt;b&gt;" in html and "Olivia &lt;Owner&gt;" in html  # escaped
    # The stack's log shows the accept link on one line (the mail catcher's output).
    log = stack.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"-- accept: {base_url}/invite/{token}" in log

    # Resend: a new e-mail with a new token; the old link no longer works.
    r = await owner.post(f"/api/organisations/invitations/{invitation['id']}/resend")
    assert r.status_code == 200, r.text
    mails = await wait_for_mails(stack, bob_email, count=2)
    assert len(mails) == 2
    new_token = token_of(parts(next(m for p, m in mails if p != path))[0], base_url)
    assert new_token != token

    bob = await sign_in(bob_email)
    r = await bob.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid or expired invitation"})
    r = await bob.post("/api/auth/accept-invite", json={"token": new_token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    me = (await bob.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"]) == (org["id"], "editor")

    # Exactly one e-mail per invitation: nothing else arrives for bob.
    await asyncio.sleep(1)
    assert len(mails_to(stack.data_dir / "mail", bob_email)) == 2
