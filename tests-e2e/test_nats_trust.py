"""The internal bus of a running stack, attacked from the host: NATS refuses clients without
credentials, a service's credentials cannot forge another service's messages, and the IDENTITY
stream (kept for a week) holds no invitation token after an invitation was sent."""

from __future__ import annotations

import asyncio
import re
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import httpx
import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from icp_stack.pytest_plugin import StackHandle

LINK = re.compile(r"https?://\S+/invite/([A-Za-z0-9_\-]+)")


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


async def invitation_token(stack: StackHandle, email: str) -> str:
    """The token of the accept link mailed to `email` (saved by the stack's mail catcher)."""
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        for path in sorted((stack.data_dir / "mail").glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",)) if isinstance(message, EmailMessage) else None
            if message["To"] == email and body is not None and (match := LINK.search(str(body.get_content()))):
                return match.group(1)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no invitation e-mail to {email}\n{stack.log_tail(40)}")


async def test_nats_refuses_a_client_without_credentials(stack: StackHandle) -> None:
    with pytest.raises(Exception) as caught:
        await nats.connect(stack.nats_url(None), allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
    assert "authorization" in repr(caught.value).lower() or "no servers" in repr(caught.value).lower()


@pytest.mark.parametrize(
    ("user", "subject"),
    [("gateway", "realtime.{org}.runs"), ("gateway", "identity.invitation.created"), ("notifications", "realtime.>")],
)
async def test_service_credentials_cannot_forge_or_snoop(stack: StackHandle, user: str, subject: str) -> None:
    errors: asyncio.Queue[str] = asyncio.Queue()

    async def record(exc: Exception) -> None:
        await errors.put(str(exc).lower())

    nc = await nats.connect(stack.nats_url(user), error_cb=record, allow_reconnect=False, inbox_prefix=f"_INBOX.{user}")
    try:
        subject = subject.format(org=uuid.uuid4())
        if subject.endswith(">"):
            await nc.subscribe(subject)
        else:
            await nc.publish(subject, b'{"table": "runs", "event": "INSERT", "record": {}}')
        assert f'permissions violation for {"subscription" if subject.endswith(">") else "publish"} to "{subject}"' in (
            await asyncio.wait_for(errors.get(), 15)
        )
    finally:
        await nc.close()


async def test_the_identity_stream_holds_no_invitation_token(base_url: str, stack: StackHandle) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as owner:
        r = await owner.get("/api/auth/dev-login", params={"email": unique_email("owner")})
        assert r.status_code == 302, r.text
        assert (await owner.post("/api/organisations", json={"name": "bus"})).status_code == 201
        email = unique_email("invitee")
        r = await owner.post("/api/organisations/invite", json={"email": email, "role": "viewer"})
        assert r.status_code == 201, r.text
        invitation_id = r.json()["id"]
    token = await invitation_token(stack, email)  # mailed: the link reached the invitee
    nc = await nats.connect(stack.nats_url("admin"))
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "identity.>", stream="IDENTITY", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        stream = b""
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except TimeoutError:
                break
            stream += b"\n".join(m.data for m in batch)
            if batch[-1].metadata.num_pending == 0:
                break
        await sub.unsubscribe()
    finally:
        await nc.close()
    assert invitation_id.encode() in stream  # the invitation's event is there...
    assert token.encode() not in stream  # ...without its token
    assert b'"token"' not in stream and b"/invite/" not in stream
