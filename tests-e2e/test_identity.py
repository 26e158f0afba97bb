"""Identity end to end, through Traefik and the gateway: dev sign-in, the session cookie,
organisations, invitations (token taken from the e-mail in the stack's mail catcher),
members, RBAC, logout."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import httpx
import pytest

from icp_stack.pytest_plugin import StackHandle

LINK = re.compile(r"https?://\S+/invite/([A-Za-z0-9_\-]+)")
COOKIE = re.compile(r"session_token=([A-Za-z0-9_-]{64}); HttpOnly; Max-Age=\d+; Path=/; SameSite=lax")


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


@pytest.fixture
async def sign_in(base_url: str) -> AsyncIterator[Callable[..., object]]:
    """`await sign_in(email)`: a client (own cookie jar) signed in through dev login."""
    clients: list[httpx.AsyncClient] = []

    async def do(email: str, name: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False)
        clients.append(client)
        params = {"email": email, "redirect": "/welcome"} | ({"name": name} if name else {})
        r = await client.get("/api/auth/dev-login", params=params)
        assert r.status_code == 302, r.text
        assert r.headers["location"] == "/welcome"
        assert COOKIE.fullmatch(r.headers["set-cookie"]), r.headers["set-cookie"]
        return client

    yield do
    for client in clients:
        await client.aclose()


async def invitation_token(stack: StackHandle, email: str) -> str:
    """The token of the accept link mailed to `email` (the stack's mail catcher saves every
    e-mail under <data-dir>/mail): the events on NATS carry none."""
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        for path in sorted((stack.data_dir / "mail").glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",)) if isinstance(message, EmailMessage) else None
            if message["To"] == email and body is not None and (match := LINK.search(str(body.get_content()))):
                return match.group(1)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no invitation e-mail to {email}\n{stack.log_tail(40)}")


async def test_anonymous_and_invalid_sessions(aapi: httpx.AsyncClient) -> None:
    r = await aapi.get("/api/auth/me")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await aapi.get("/api/auth/me", headers={"cookie": "session_token=not-a-session"})
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})
    r = await aapi.get("/api/organisations/members")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})


async def test_dev_login_me_and_logout(sign_in, base_url: str) -> None:
    email = unique_email("ada")
    ada = await sign_in(email, "Ada")
    token = ada.cookies["session_token"]
    r = await ada.get("/api/auth/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert set(me) == {"id", "email", "name", "avatar_url", "role", "organisation", "last_organisation_id"}
    assert (me["email"], me["name"], me["organisation"], me["role"]) == (email, "Ada", None, None)
    assert (await ada.get("/api/organisations/members")).json() == {"detail": "No organisation selected"}

    other_device = await sign_in(email)
    r = await ada.post("/api/auth/logout")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert r.headers["set-cookie"].startswith('session_token=""; ')
    assert "Max-Age=0" in r.headers["set-cookie"]
    r = await ada.get("/api/auth/me")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})  # the cookie is gone
    async with httpx.AsyncClient(base_url=base_url) as replay:
        r = await replay.get("/api/auth/me", headers={"cookie": f"session_token={token}"})
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})
    r = await other_device.get("/api/auth/me")  # logout signs out every device
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})


async def test_organisation_invitation_and_membership_lifecycle(sign_in, stack: StackHandle, base_url: str) -> None:
    owner_email = unique_email("owner")
    owner = await sign_in(owner_email, "Owner")
    r = await owner.post("/api/organisations", json={"name": "E2E Org"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert set(org) == {"id", "name", "created_at"}
    assert org["created_at"].endswith("Z")
    me = (await owner.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"], me["last_organisation_id"]) == (org["id"], "admin", org["id"])

    # Both spellings of a collection answer directly (no redirect).
    for path in ("/api/organisations/", "/api/organisations"):
        r = await owner.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert [o["id"] for o in r.json()] == [org["id"]]

    bob_email = unique_email("bob")
    r = await owner.post("/api/organisations/invite", json={"email": f" {bob_email} ", "role": "editor"})
    assert r.status_code == 201, r.text
    invitation = r.json()
    assert set(invitation) == {"id", "email", "role", "created_at", "expires_at"}
    assert (invitation["email"], invitation["role"]) == (bob_email, "editor")
    r = await owner.post("/api/organisations/invite", json={"email": bob_email, "role": "superuser"})
    assert r.status_code == 422
    listed = (await owner.get("/api/organisations/invitations")).json()
    assert [i["id"] for i in listed] == [invitation["id"]]

    token = await invitation_token(stack, bob_email)
    bob = await sign_in(bob_email, "Bob")
    r = await bob.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    me = (await bob.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"]) == (org["id"], "editor")
    r = await bob.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid or expired invitation"})
    assert (await owner.get("/api/organisations/invitations")).json() == []

    members = (await owner.get("/api/organisations/members")).json()
    assert sorted((m["email"], m["role"]) for m in members) == sorted([(owner_email, "admin"), (bob_email, "editor")])
    r = await bob.get("/api/organisations/invitations")
    assert (r.status_code, r.json()) == (403, {"detail": "Requires admin role or higher"})

    r = await owner.delete(f"/api/organisations/members/{me['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await bob.get("/api/organisations/members")
    assert (r.status_code, r.json()) == (403, {"detail": "Not a member of this organisation"})


async def test_cross_organisation_attempts(sign_in) -> None:
    a = await sign_in(unique_email("a-admin"))
    b = await sign_in(unique_email("b-admin"))
    org_a = (await a.post("/api/organisations", json={"name": "A"})).json()
    await b.post("/api/organisations", json={"name": "B"})
    invitation = (await a.post("/api/organisations/invite", json={"email": "x@e2e.example"})).json()
    a_id = (await a.get("/api/auth/me")).json()["id"]
    r = await b.delete(f"/api/organisations/invitations/{invitation['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": "Invitation not found"})
    r = await b.post(f"/api/organisations/invitations/{invitation['id']}/resend")
    assert (r.status_code, r.json()) == (404, {"detail": "Invitation not found"})
    r = await b.delete(f"/api/organisations/members/{a_id}")
    assert (r.status_code, r.json()) == (404, {"detail": "Member not found"})
    r = await b.post("/api/auth/switch-org", json={"organisation_id": org_a["id"]})
    assert (r.status_code, r.json()) == (403, {"detail": "Not a member of this organisation"})
    assert [i["id"] for i in (await a.get("/api/organisations/invitations")).json()] == [invitation["id"]]


async def test_cross_site_write_with_the_cookie_is_refused(sign_in) -> None:
    user = await sign_in(unique_email("csrf"))
    r = await user.post("/api/organisations", json={"name": "evil"}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    assert (await user.get("/api/organisations")).json() == []


async def test_dev_login_refuses_off_site_redirects(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for target in ("//evil.example", "/\\evil.example", "https://evil.example/"):
            r = await client.get("/api/auth/dev-login", params={"email": unique_email("r"), "redirect": target})
            assert (r.status_code, r.headers["location"]) == (302, "/")
