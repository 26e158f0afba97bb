"""The audit log (issue 18.3) end to end, through Traefik and the gateway: what each public action
records (pipelines' entries travel outbox -> NATS -> identity, so the reads poll until they land),
refusals recorded as `denied`, admin-only reads, organisations kept apart, keyset pagination and
filters, no secret in any entry, token and service-account actors, a client-sent X-Forwarded-For
ignored."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest

from icp_stack.pytest_plugin import StackHandle

LINK = re.compile(r"https?://\S+/invite/([A-Za-z0-9_\-]+)")
ENTRY_KEYS = {
    "id",
    "timestamp",
    "organisation_id",
    "actor",
    "action",
    "target",
    "outcome",
    "request_id",
    "ip",
    "user_agent",
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

SignIn = Callable[..., Any]


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"


@pytest.fixture
async def sign_in(base_url: str) -> AsyncIterator[SignIn]:
    """`await sign_in(email, org=None)`: a client signed in through dev login (own cookie jar)."""
    clients: list[httpx.AsyncClient] = []

    async def do(email: str, org: str | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=base_url, timeout=30.0, follow_redirects=False, headers={"user-agent": "audit-e2e/1.0"}
        )
        clients.append(client)
        assert (await client.get("/api/auth/dev-login", params={"email": email})).status_code == 302
        if org:
            assert (await client.post("/api/organisations", json={"name": org})).status_code == 201
        return client

    yield do
    for client in clients:
        await client.aclose()


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


async def entries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every entry matching `params`, following the cursor (newest first)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/audit", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"}
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def wait_for(client: httpx.AsyncClient, action: str, target_id: str | None = None) -> dict[str, Any]:
    """The entry of `action` (on `target_id`), once stored: pipelines' entries arrive via NATS."""
    params = {"action": action, **({"target_id": target_id} if target_id else {})}
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        found = await entries(client, **params)
        if found:
            assert len(found) == 1, found  # exactly one entry per action
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no audit entry {params}")


def check_entry(entry: dict[str, Any], org_id: str) -> None:
    assert set(entry) == ENTRY_KEYS
    assert entry["organisation_id"] == org_id
    assert TIMESTAMP.match(entry["timestamp"]), entry["timestamp"]
    assert entry["request_id"] and entry["ip"]
    assert set(entry["actor"]) == {"type", "id", "email"} and set(entry["target"]) == {"type", "id"}


async def test_actions_are_recorded_without_secrets(sign_in: SignIn, stack: StackHandle, base_url: str) -> None:
    email = unique_email("auditor")
    admin = await sign_in(email, org="Audited")
    me = (await admin.get("/api/auth/me")).json()
    org_id, user_id = me["organisation"]["id"], me["id"]
    secret = f"s3cret-{uuid.uuid4().hex}"

    # Sign out and in again (the second sign-in lands in the organisation: it is recorded there).
    assert (await admin.post("/api/auth/logout")).status_code == 200
    admin = await sign_in(email)
    assert (await admin.post("/api/auth/switch-org", json={"organisation_id": org_id})).status_code == 200
    entry = await wait_for(admin, "auth.sign_out")
    check_entry(entry, org_id)
    assert entry["actor"] == {"type": "user", "id": user_id, "email": email}
    entry = await wait_for(admin, "auth.sign_in")
    assert (entry["outcome"], entry["actor"]["id"], entry["target"]) == (
        "success",
        user_id,
        {"type": "sign_in_method", "id": "dev"},
    )
    assert entry["user_agent"] == "audit-e2e/1.0"

    # A client's own X-Forwarded-For is not believed (Traefik replaces it).
    r = await admin.post(
        "/api/resources",
        json={"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": secret}},
        headers={"x-forwarded-for": "203.0.113.66"},
    )
    assert r.status_code == 200, r.text
    resource = r.json()
    entry = await wait_for(admin, "resources.create", resource["id"])
    check_entry(entry, org_id)
    assert entry["ip"] != "203.0.113.66"
    assert entry["actor"] == {"type": "user", "id": user_id, "email": email}
    assert entry["target"] == {"type": "resource", "id": resource["id"]}
    assert entry["outcome"] == "success"

    source = (await admin.post("/api/sources/", json={"key": "demo_source", "name": "Demo"})).json()
    job = (await admin.post("/api/jobs/", json={"name": "nightly", "cron": "0 3 * * *"})).json()
    assert (await admin.put(f"/api/jobs/{job['id']}", json={"name": "nightly", "cron": "0 4 * * *"})).status_code == 200
    run = (await admin.post(f"/api/jobs/{job['id']}/run")).json()
    assert (await admin.delete(f"/api/jobs/{job['id']}")).status_code == 200
    for action, target in (
        ("sources.create", {"type": "source", "id": source["id"]}),
        ("jobs.create", {"type": "job", "id": job["id"]}),
        ("jobs.update", {"type": "job", "id": job["id"]}),
        ("jobs.run", {"type": "run", "id": run["run_id"]}),
        ("jobs.delete", {"type": "job", "id": job["id"]}),
    ):
        entry = await wait_for(admin, action, target["id"])
        check_entry(entry, org_id)
        assert entry["target"] == target

    # Tokens: creation and revocation (never the secret).
    r = await admin.post("/api/tokens", json={"name": "ci", "role": "editor"})
    token = r.json()
    assert (await admin.delete(f"/api/tokens/{token['id']}")).status_code == 204
    assert (await wait_for(admin, "tokens.create", token["id"]))["target"] == {"type": "token", "id": token["id"]}
    await wait_for(admin, "tokens.revoke", token["id"])

    # An invitation sent and accepted.
    invited = unique_email("invited")
    r = await admin.post("/api/organisations/invite", json={"email": invited, "role": "viewer"})
    assert r.status_code == 201
    await wait_for(admin, "invitations.create", r.json()["id"])
    viewer = await sign_in(invited)
    accept = await viewer.post("/api/auth/accept-invite", json={"token": await invitation_token(stack, invited)})
    assert accept.json() == {"status": "ok"}
    entry = await wait_for(admin, "invitations.accept")
    assert entry["actor"]["email"] == invited

    # Nothing secret anywhere: resource data, token secret, invitation token.
    everything = json.dumps(await entries(admin))
    for value in (secret, token["token"], token["token"][4:]):
        assert value not in everything


async def test_refusals_admin_only_reads_and_isolation(sign_in: SignIn, stack: StackHandle, base_url: str) -> None:
    admin = await sign_in(unique_email("admin"), org="Refusals")
    org_id = (await admin.get("/api/auth/me")).json()["organisation"]["id"]
    viewer_email = unique_email("viewer")
    assert (
        await admin.post("/api/organisations/invite", json={"email": viewer_email, "role": "viewer"})
    ).status_code == 201
    viewer = await sign_in(viewer_email)
    token = await invitation_token(stack, viewer_email)
    assert (await viewer.post("/api/auth/accept-invite", json={"token": token})).json() == {"status": "ok"}
    viewer_id = (await viewer.get("/api/auth/me")).json()["id"]

    # A viewer's refused write is recorded as denied.
    r = await viewer.post("/api/jobs/", json={"name": "x", "cron": "* * * * *"})
    assert r.status_code == 403
    entry = await wait_for(admin, "jobs.create")
    check_entry(entry, org_id)
    assert (entry["outcome"], entry["actor"]["id"], entry["actor"]["type"]) == ("denied", viewer_id, "user")

    # Reads: admins only (viewer and editor 403, unauthenticated 401).
    assert (await viewer.get("/api/audit")).status_code == 403
    editor_token = (await admin.post("/api/tokens", json={"name": "ed", "role": "editor"})).json()["token"]
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as anon:
        r = await anon.get("/api/audit")
        assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
        r = await anon.get("/api/audit", headers={"authorization": f"Bearer {editor_token}"})
        assert r.status_code == 403
    # Only state-changing attempts are recorded: the refused reads left no entry.
    assert not [e for e in await entries(admin) if e["action"].startswith("audit")]

    # Another organisation sees none of these entries, even by target id.
    other = await sign_in(unique_email("other"), org="Elsewhere")
    job = (await admin.post("/api/jobs/", json={"name": "mine", "cron": "0 3 * * *"})).json()
    await wait_for(admin, "jobs.create", job["id"])
    assert await entries(other, target_id=job["id"]) == []
    other_org = (await other.get("/api/auth/me")).json()["organisation"]["id"]
    assert {e["organisation_id"] for e in await entries(other)} == {other_org}

    # Validation.
    for params in ({"limit": 0}, {"limit": 501}, {"cursor": "!!!"}, {"since": "yesterday"}):
        r = await admin.get("/api/audit", params=params)
        assert r.status_code in (400, 422) and "detail" in r.json(), (params, r.text)


async def test_pagination_filters_and_token_actors(sign_in: SignIn, base_url: str) -> None:
    admin = await sign_in(unique_email("pager"), org="Pages")
    org_id = (await admin.get("/api/auth/me")).json()["organisation"]["id"]
    jobs = []
    for n in range(5):
        jobs.append((await admin.post("/api/jobs/", json={"name": f"j{n}", "cron": "0 3 * * *"})).json())
    for job in jobs:
        await wait_for(admin, "jobs.create", job["id"])

    # Keyset pagination: limit 2, newest first, no duplicates, the same set as one page.
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        r = await admin.get("/api/audit", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = r.json()
        pages.append(body["items"])
        assert len(body["items"]) <= 2
        cursor = body["next_cursor"]
        if cursor is None:
            break
    flat = [e for page in pages for e in page]
    assert [e["id"] for e in flat] == [e["id"] for e in (await admin.get("/api/audit")).json()["items"]]
    assert len({e["id"] for e in flat}) == len(flat)
    stamps = [e["timestamp"] for e in flat]
    assert stamps == sorted(stamps, reverse=True)
    created = [e["target"]["id"] for e in flat if e["action"] == "jobs.create"]
    assert created == [job["id"] for job in reversed(jobs)]

    # Filters: action, target, actor, time window.
    third = await entries(admin, target_id=jobs[2]["id"])
    assert [e["action"] for e in third] == ["jobs.create"]
    at = third[0]["timestamp"]
    assert {e["target"]["id"] for e in await entries(admin, action="jobs.create", since=at)} == {
        j["id"] for j in jobs[2:]
    }
    assert {e["target"]["id"] for e in await entries(admin, action="jobs.create", until=at)} == {
        j["id"] for j in jobs[:2]
    }

    # Token actors: a member's token is shown as the token, a service account as itself.
    member_token = (await admin.post("/api/tokens", json={"name": "ci", "role": "editor"})).json()
    service = (
        await admin.post("/api/tokens", json={"name": "robot", "role": "editor", "service_account": True})
    ).json()
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as script:
        for token, name in ((member_token, "by-token"), (service, "by-robot")):
            r = await script.post(
                "/api/jobs/",
                json={"name": name, "cron": "0 3 * * *"},
                headers={"authorization": f"Bearer {token['token']}"},
            )
            assert r.status_code == 200, r.text
            token["job"] = r.json()["id"]
        # A token may not mint tokens: the refusal is recorded, attributed to the token.
        r = await script.post(
            "/api/tokens",
            json={"name": "more", "role": "viewer"},
            headers={"authorization": f"Bearer {member_token['token']}"},
        )
        assert r.status_code == 403
    denied = [e for e in await entries(admin, action="tokens.create") if e["outcome"] == "denied"]
    assert [(e["actor"]["type"], e["actor"]["id"]) for e in denied] == [("token", member_token["id"])]
    entry = await wait_for(admin, "jobs.create", member_token["job"])
    assert entry["actor"]["type"] == "token" and entry["actor"]["id"] == member_token["id"]
    entry = await wait_for(admin, "jobs.create", service["job"])
    assert entry["actor"] == {"type": "service_account", "id": service["id"], "email": None}
    by_actor = await entries(admin, actor_id=member_token["id"])
    assert [(e["action"], e["outcome"], e["target"]["id"]) for e in by_actor] == [
        ("tokens.create", "denied", None),  # newest first
        ("jobs.create", "success", member_token["job"]),
    ]
    check_entry(by_actor[1], org_id)
