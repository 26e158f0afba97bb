"""API tokens and service accounts (issue 18.2) end to end, through Traefik and the gateway:
create/list/revoke, `Authorization: Bearer ilp_...` on pipelines, identity, /api/ws and SSE, 401
from the very next request after revocation or the owner's removal, service accounts surviving
their creator, role bounds, no cookie CSRF check for bearer requests, bearer over cookie, a
non-`ilp_` bearer being no credential, and a token unable to mint tokens or manage members."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from icp_stack.pytest_plugin import StackHandle

LINK = re.compile(r"https?://\S+/invite/([A-Za-z0-9_\-]+)")
INVALID = {"detail": "Invalid or expired token"}
INSUFFICIENT = {"detail": "Insufficient permissions"}
TOKEN_KEYS = {"id", "name", "role", "organisation_id", "token_prefix", "created_at", "expires_at", "last_used_at"}
TOKEN_KEYS |= {"service_account"}

SignIn = Callable[..., Any]


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def sign_in(base_url: str) -> AsyncIterator[SignIn]:
    """`await sign_in(email, org=None)`: a client signed in through dev login (own cookie jar)."""
    clients: list[httpx.AsyncClient] = []

    async def do(email: str, org: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False)
        clients.append(client)
        assert (await client.get("/api/auth/dev-login", params={"email": email})).status_code == 302
        if org:
            assert (await client.post("/api/organisations", json={"name": org})).status_code == 201
        return client

    yield do
    for client in clients:
        await client.aclose()


@pytest.fixture
async def anon(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """No cookie: only what a script would send."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False) as client:
        yield client


async def invitation_token(stack: StackHandle, email: str) -> str:
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        for path in sorted((stack.data_dir / "mail").glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",)) if isinstance(message, EmailMessage) else None
            if message["To"] == email and body is not None and (match := LINK.search(str(body.get_content()))):
                return match.group(1)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no invitation e-mail to {email}")


async def join(owner: httpx.AsyncClient, stack: StackHandle, sign_in: SignIn, role: str) -> httpx.AsyncClient:
    """A new member of `owner`'s organisation with `role`, signed in."""
    email = unique_email(role)
    assert (await owner.post("/api/organisations/invite", json={"email": email, "role": role})).status_code == 201
    token = await invitation_token(stack, email)
    member = await sign_in(email)
    assert (await member.post("/api/auth/accept-invite", json={"token": token})).json() == {"status": "ok"}
    return member


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/tokens", json={"name": "ci", "role": "viewer", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_list_use_and_revoke(sign_in: SignIn, anon: httpx.AsyncClient) -> None:
    owner = await sign_in(unique_email("owner"), "Tokens Org")
    org_id = (await owner.get("/api/auth/me")).json()["organisation"]["id"]
    created = await create(owner, name="deploy", role="editor")
    assert set(created) == TOKEN_KEYS | {"token"}
    assert created["token"].startswith("ilp_") and len(created["token"]) >= 47
    assert (created["organisation_id"], created["role"], created["last_used_at"]) == (org_id, "editor", None)
    assert created["created_at"].endswith("Z") and created["expires_at"].endswith("Z")
    assert created["token_prefix"] == created["token"][:12] and created["service_account"] is False
    listed = (await owner.get("/api/tokens")).json()
    assert [t["id"] for t in listed] == [created["id"]] and "token" not in listed[0]

    headers = bearer(created["token"])
    # On pipelines (read and write) and identity, acting in the token's organisation.
    assert (await anon.get("/api/runs/", headers=headers)).status_code == 200
    job = await anon.post("/api/jobs/", headers=headers, json={"name": "by-token", "cron": "0 0 * * *"})
    assert job.status_code == 200, job.text
    assert [j["id"] for j in (await owner.get("/api/jobs/")).json()] == [job.json()["id"]]
    me = (await anon.get("/api/auth/me", headers=headers)).json()
    assert (me["organisation"]["id"], me["role"]) == (org_id, "editor")
    assert (await owner.get("/api/tokens")).json()[0]["last_used_at"] is not None

    r = await owner.delete(f"/api/tokens/{created['id']}")
    assert (r.status_code, r.content) == (204, b"")
    # The very next request (the gateway had it cached a moment ago).
    r = await anon.get("/api/runs/", headers=headers)
    assert (r.status_code, r.json()) == (401, INVALID)
    r = await owner.delete(f"/api/tokens/{created['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": "Token not found"})
    r = await anon.get("/api/runs/", headers=bearer("ilp_" + "x" * 43))
    assert (r.status_code, r.json()) == (401, INVALID)
    assert (await owner.get("/api/tokens")).json() == []


async def test_roles_validation_and_refusals(sign_in: SignIn, stack: StackHandle, anon: httpx.AsyncClient) -> None:
    owner = await sign_in(unique_email("owner"), "Roles Org")
    editor = await join(owner, stack, sign_in, "editor")
    viewer = await join(owner, stack, sign_in, "viewer")
    for client, body in (
        (viewer, {"role": "editor"}),
        (editor, {"role": "admin"}),
        (editor, {"expires_in_days": None}),  # never expires: admins only
        (editor, {"service_account": True}),
    ):
        r = await client.post("/api/tokens", json={"name": "x", "role": "viewer", **body})
        assert (r.status_code, r.json()) == (403, INSUFFICIENT), body
    for body in (
        {"name": "", "role": "viewer"},
        {"name": "x" * 101, "role": "viewer"},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "viewer", "expires_in_days": 0},
        {"name": "x", "role": "viewer", "expires_in_days": 366},
        {"role": "viewer"},
    ):
        assert (await owner.post("/api/tokens", json=body)).status_code == 422, body
    forever = await create(owner, role="admin", expires_in_days=None)
    assert forever["expires_at"] is None
    # The token's role bounds what it may do, whatever its owner's role.
    scoped = await create(owner, role="viewer")
    assert (await anon.get("/api/auth/me", headers=bearer(scoped["token"]))).json()["role"] == "viewer"
    r = await anon.post("/api/jobs/", headers=bearer(scoped["token"]), json={"name": "no", "cron": "0 0 * * *"})
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    # Lists: a member sees their own tokens, an admin every token of the organisation.
    mine = await create(editor, name="editor's")
    assert [t["id"] for t in (await editor.get("/api/tokens")).json()] == [mine["id"]]
    everyone = [t["id"] for t in (await owner.get("/api/tokens")).json()]
    assert everyone == [mine["id"], scoped["id"], forever["id"]]
    r = await viewer.delete(f"/api/tokens/{mine['id']}")  # another member's token
    assert (r.status_code, r.json()) == (404, {"detail": "Token not found"})
    stranger = await sign_in(unique_email("stranger"), "Elsewhere")
    r = await stranger.delete(f"/api/tokens/{mine['id']}")  # another organisation's
    assert (r.status_code, r.json()) == (404, {"detail": "Token not found"})
    assert (await anon.get("/api/runs/", headers=bearer(mine["token"]))).status_code == 200


async def test_a_token_cannot_mint_tokens_nor_manage_members(sign_in: SignIn, stack: StackHandle) -> None:
    owner = await sign_in(unique_email("owner"), "Leak Org")
    member = await join(owner, stack, sign_in, "viewer")
    member_id = (await member.get("/api/auth/me")).json()["id"]
    admin_token = await create(owner, role="admin", expires_in_days=None)
    service = await create(owner, role="admin", service_account=True)
    for leaked in (admin_token, service):
        async with httpx.AsyncClient(base_url=str(owner.base_url), headers=bearer(leaked["token"])) as attacker:
            attempts = [
                await attacker.post("/api/tokens", json={"name": "more", "role": "admin", "expires_in_days": None}),
                await attacker.get("/api/tokens"),
                await attacker.delete(f"/api/tokens/{admin_token['id']}"),
                await attacker.delete(f"/api/organisations/members/{member_id}"),
                await attacker.post("/api/organisations/invite", json={"email": unique_email("evil"), "role": "admin"}),
                await attacker.get("/api/organisations/invitations"),
            ]
            assert [r.status_code for r in attempts] == [403] * len(attempts), [r.text for r in attempts]
            assert (await attacker.get("/api/jobs/")).status_code == 200  # what it may do
    assert len((await owner.get("/api/tokens")).json()) == 2
    assert len((await owner.get("/api/organisations/members")).json()) == 2
    assert (await owner.get("/api/organisations/invitations")).json() == []


async def test_owner_removal_ends_their_tokens_but_service_accounts_survive(
    sign_in: SignIn, stack: StackHandle, anon: httpx.AsyncClient
) -> None:
    owner = await sign_in(unique_email("owner"), "Removal Org")
    admin = await join(owner, stack, sign_in, "admin")
    admin_id = (await admin.get("/api/auth/me")).json()["id"]
    own = await create(admin, role="editor")
    service = await create(admin, name="robot", role="editor", service_account=True)
    for token in (own, service):  # both cached by the gateway now
        assert (await anon.get("/api/runs/", headers=bearer(token["token"]))).status_code == 200
    assert (await owner.delete(f"/api/organisations/members/{admin_id}")).status_code == 200
    r = await anon.get("/api/runs/", headers=bearer(own["token"]))  # the very next request
    assert (r.status_code, r.json()) == (401, INVALID)
    me = await anon.get("/api/auth/me", headers=bearer(service["token"]))
    assert (me.status_code, me.json()["id"], me.json()["role"]) == (200, service["id"], "editor")
    job = await anon.post("/api/jobs/", headers=bearer(service["token"]), json={"name": "sa", "cron": "0 0 * * *"})
    assert job.status_code == 200, job.text
    assert [t["id"] for t in (await owner.get("/api/tokens")).json()] == [service["id"]]
    assert (await owner.delete(f"/api/tokens/{service['id']}")).status_code == 204
    r = await anon.get("/api/runs/", headers=bearer(service["token"]))
    assert (r.status_code, r.json()) == (401, INVALID)


async def test_bearer_over_cookie_no_csrf_check_and_non_ilp_is_absent(sign_in: SignIn, anon: httpx.AsyncClient) -> None:
    alice = await sign_in(unique_email("alice"), "Alice Org")
    bob = await sign_in(unique_email("bob"), "Bob Org")
    bob_token = await create(bob, role="editor")
    bob_id = (await bob.get("/api/auth/me")).json()["id"]
    # Alice's cookie and Bob's token: the token wins.
    assert (await alice.get("/api/auth/me", headers=bearer(bob_token["token"]))).json()["id"] == bob_id
    # A cross-site write: refused with the cookie alone, not with a bearer token (no browser
    # adds one by itself).
    evil = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    body = {"name": "x", "cron": "0 0 * * *"}
    r = await alice.post("/api/jobs/", json=body, headers=evil)
    assert (r.status_code, r.json()) == (403, {"detail": "Cross-site request refused"})
    r = await anon.post("/api/jobs/", json=body, headers={**evil, **bearer(bob_token["token"])})
    assert r.status_code == 200, r.text
    r = await alice.post("/api/jobs/", json=body, headers={**evil, **bearer(bob_token["token"])})
    assert r.status_code == 200 and len((await bob.get("/api/jobs/")).json()) == 2
    assert (await alice.get("/api/jobs/")).json() == []
    # A bearer value that is not an API token is no credential.
    r = await anon.get("/api/auth/me", headers=bearer("eyJhbGciOiJIUzI1NiJ9.x.y"))
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await alice.get("/api/auth/me", headers=bearer(alice.cookies["session_token"]))
    assert r.status_code == 200 and r.json()["id"] != bob_id


async def test_realtime_streams_accept_the_bearer_token(
    sign_in: SignIn, base_url: str, anon: httpx.AsyncClient
) -> None:
    owner = await sign_in(unique_email("rt"), "Realtime Tokens")
    token = await create(owner, role="editor")
    job = (await owner.post("/api/jobs/", json={"name": "rt", "cron": "0 0 * * *", "enabled": False})).json()
    url = base_url.replace("http://", "ws://") + "/api/ws"
    async with websockets.connect(url, additional_headers=bearer(token["token"])) as socket:
        await asyncio.sleep(0.3)
        run = await anon.post(f"/api/jobs/{job['id']}/run", headers=bearer(token["token"]))
        assert run.status_code == 200, run.text
        async with asyncio.timeout(15):
            while True:
                message = json.loads(await socket.recv())
                if message.get("table") == "runs" and message["record"]["id"] == run.json()["run_id"]:
                    break
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(url, additional_headers=bearer("ilp_" + "y" * 43)):
            pass
    assert caught.value.response.status_code == 403
    async with anon.stream("GET", "/api/events/stream", headers=bearer(token["token"])) as stream:
        assert stream.status_code == 200
        assert (await anext(stream.aiter_bytes())).startswith(b"retry:")
    r = await anon.get("/api/events/stream", headers=bearer("ilp_" + "y" * 43))
    assert (r.status_code, r.json()) == (401, INVALID)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def test_bearer_and_cookie_request_latency(sign_in: SignIn, anon: httpx.AsyncClient) -> None:
    """Not a timed assertion: prints the figures (INTERLOPER_TOKEN_LATENCY_N requests each way,
    sequential GET /api/auth/me through Traefik, alternating so both see the same load)."""
    owner = await sign_in(unique_email("latency"), "Latency Org")
    token = await create(owner, role="viewer")
    n = int(os.environ.get("INTERLOPER_TOKEN_LATENCY_N", "200"))
    timings: dict[str, list[float]] = {"cookie": [], "bearer": []}
    for _ in range(n):
        for kind, client, headers in (("cookie", owner, {}), ("bearer", anon, bearer(token["token"]))):
            started = time.perf_counter()
            r = await client.get("/api/auth/me", headers=headers)
            timings[kind].append(time.perf_counter() - started)
            assert r.status_code == 200
    for kind, samples in timings.items():
        print(f"\n{kind}: {n} x GET /api/auth/me through Traefik: {percentiles(samples)}")
