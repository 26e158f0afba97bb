"""/api/auth/me, /logout, /switch-org (spec 2.4) through a gateway-like client."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import text

from icp_common.identity import IDENTITY_HEADER, Identity

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
AUTH_USER_KEYS = {"id", "email", "name", "avatar_url", "role", "organisation", "last_organisation_id"}
NOT_AUTHENTICATED = {"detail": "Not authenticated"}
INVALID_SESSION = {"detail": "Invalid or expired session"}


# ------------------------------------------------------------------------------------------ me


async def test_me_with_active_organisation(clients, world):
    r = await clients.owner.get("/api/auth/me")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == AUTH_USER_KEYS
    assert body["id"] == str(world.owner.user_id)
    assert body["email"] == "owner@a.example"
    assert body["name"] == "Owner A"
    assert body["avatar_url"] is None
    assert body["role"] == "admin"
    assert set(body["organisation"]) == {"id", "name", "created_at"}
    assert body["organisation"]["id"] == str(world.org_a)
    assert body["organisation"]["name"] == "Org A"
    assert ISO_Z.match(body["organisation"]["created_at"])
    assert body["last_organisation_id"] == str(world.org_a)


async def test_me_roles(clients):
    assert (await clients.editor.get("/api/auth/me")).json()["role"] == "editor"
    viewer = (await clients.viewer.get("/api/auth/me")).json()
    assert viewer["role"] == "viewer"
    assert viewer["name"] is None


async def test_me_without_organisation(clients, world):
    r = await clients.no_org.get("/api/auth/me")
    assert r.status_code == 200
    assert r.json() == {
        "id": str(world.no_org.user_id),
        "email": "fresh@example.com",
        "name": "Fresh",
        "avatar_url": None,
        "role": None,
        "organisation": None,
        "last_organisation_id": None,
    }


async def test_me_of_removed_member_shows_the_organisation_without_role(clients, world):
    body = (await clients.removed.get("/api/auth/me")).json()
    assert body["organisation"]["id"] == str(world.org_a)
    assert body["role"] is None


async def test_me_denials(clients):
    r = await clients.anonymous.get("/api/auth/me")
    assert (r.status_code, r.json()) == (401, NOT_AUTHENTICATED)
    r = await clients.invalid.get("/api/auth/me")
    assert (r.status_code, r.json()) == (401, INVALID_SESSION)


async def test_expired_session_is_invalid(clients, world, db):
    async with db() as s:
        await s.execute(
            text("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": world.viewer.session_id},
        )
    r = await clients.viewer.get("/api/auth/me")
    assert (r.status_code, r.json()) == (401, INVALID_SESSION)


async def test_forged_identity_header_is_refused(app, world):
    import httpx

    from icp_common.identity import IdentitySigner

    forged = IdentitySigner(b"not-the-secret", audience="identity").sign(
        Identity(state="ok", user_id=str(world.owner.user_id))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get("/api/auth/me", headers={IDENTITY_HEADER: forged})
    assert r.status_code == 401


# -------------------------------------------------------------------------------------- logout


async def test_logout_revokes_every_session_of_the_user(clients, world, client_for, make_user, outbox):
    second = await make_user("owner@a.example")  # the same profile, another device
    assert second.user_id == world.owner.user_id
    r = await clients.owner.post("/api/auth/logout")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    cookie = r.headers["set-cookie"]
    assert re.fullmatch(
        r'session_token=""; expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; '
        r"Max-Age=0; Path=/; SameSite=lax",
        cookie,
    ), cookie
    for token in (world.owner.token, second.token):
        r = await client_for(token).get("/api/auth/me")
        assert (r.status_code, r.json()) == (401, INVALID_SESSION)
    assert (await clients.admin.get("/api/auth/me")).status_code == 200  # other users keep theirs
    events = await outbox("identity.session.revoked")
    assert len(events) == 1
    payload = events[0]["payload"]
    assert set(payload) == {"event_id", "user_id", "session_ids"}
    assert payload["user_id"] == str(world.owner.user_id)
    assert set(payload["session_ids"]) == {str(world.owner.session_id), str(second.session_id)}
    assert events[0]["msg_id"] == payload["event_id"]


async def test_logout_denials(clients):
    r = await clients.anonymous.post("/api/auth/logout")
    assert (r.status_code, r.json()) == (401, NOT_AUTHENTICATED)
    r = await clients.invalid.post("/api/auth/logout")
    assert (r.status_code, r.json()) == (401, INVALID_SESSION)
    assert "set-cookie" not in r.headers


# ---------------------------------------------------------------------------------- switch-org


async def test_switch_org(clients, world, client_for, make_user, join, outbox):
    # The owner of org A also joins org B as viewer, then switches back and forth.
    await join(world.owner, world.org_b, "viewer")  # join() switches the session to B
    me = (await clients.owner.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"]) == (str(world.org_b), "viewer")
    r = await clients.owner.post("/api/auth/switch-org", json={"organisation_id": str(world.org_a)})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    me = (await clients.owner.get("/api/auth/me")).json()
    assert me["organisation"]["id"] == str(world.org_a)
    assert me["role"] == "admin"
    assert me["last_organisation_id"] == str(world.org_a)
    switched = (await outbox("identity.session.switched"))[-1]["payload"]
    assert switched == {
        "event_id": switched["event_id"],
        "user_id": str(world.owner.user_id),
        "session_id": str(world.owner.session_id),
        "org_id": str(world.org_a),
    }


async def test_switch_org_without_membership_is_403_and_changes_nothing(clients, world):
    for target in (world.org_b, uuid.uuid4()):
        r = await clients.owner.post("/api/auth/switch-org", json={"organisation_id": str(target)})
        assert (r.status_code, r.json()) == (403, {"detail": "Not a member of this organisation"})
    me = (await clients.owner.get("/api/auth/me")).json()
    assert me["organisation"]["id"] == str(world.org_a)
    # A removed member cannot switch back either.
    r = await clients.removed.post("/api/auth/switch-org", json={"organisation_id": str(world.org_a)})
    assert r.status_code == 403


async def test_switch_org_validation_and_precedence(clients):
    r = await clients.owner.post("/api/auth/switch-org", json={"organisation_id": "nope"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "uuid_parsing"
    assert r.json()["detail"][0]["loc"] == ["body", "organisation_id"]
    r = await clients.owner.post("/api/auth/switch-org", json={})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "missing"
    # Malformed JSON is 422 before authentication; a bad body of an anonymous caller is 401.
    r = await clients.anonymous.post(
        "/api/auth/switch-org", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = await clients.anonymous.post("/api/auth/switch-org", json={"organisation_id": "nope"})
    assert (r.status_code, r.json()) == (401, NOT_AUTHENTICATED)
    r = await clients.invalid.post("/api/auth/switch-org", json={"organisation_id": str(uuid.uuid4())})
    assert (r.status_code, r.json()) == (401, INVALID_SESSION)


async def test_trailing_slash_on_auth_routes_is_served_directly(clients):
    r = await clients.owner.get("/api/auth/me/")
    assert (r.status_code, r.json()) == (200, (await clients.owner.get("/api/auth/me")).json())


@pytest.mark.parametrize(
    ("method", "path", "changes"),
    [
        ("GET", "/api/auth/me", {"user_id": "u1"}),
        ("POST", "/api/auth/logout", {"session_id": "s1"}),
        ("GET", "/api/organisations/members", {"org_id": "not-an-org", "org_exists": True, "role": "viewer"}),
        ("GET", "/api/organisations/invitations", {"org_id": "1 OR 1=1", "org_exists": True, "role": "admin"}),
    ],
)
async def test_an_assertion_with_ids_that_are_not_uuids_is_401_not_500(app, signer, world, method, path, changes):
    """The caller is parsed once at the edge (icp_common.caller): a signed assertion whose ids are
    not UUIDs (a gateway bug, never an attacker's forgery) is refused cleanly, nothing written."""
    asserted = world.owner.identity(world.org_a, "admin")
    forged = Identity(**{**asserted.to_dict(), **changes})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.request(method, path, headers={IDENTITY_HEADER: signer.sign(forged)})
    assert (r.status_code, r.json()) == (401, {"detail": "Malformed caller identity"})
