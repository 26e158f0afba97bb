"""Invitations (spec 2.5, 3.4 with the fixes of issue 3): invite, list, revoke, resend, accept;
the token never travels in the outbox event (the notifications service gets it over gRPC,
IssueInvitationLink); another organisation's invitations are 404."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from icp_identity.invitations import links
from icp_identity.security import hash_token

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
INVITATION_KEYS = {"id", "email", "role", "created_at", "expires_at"}
EVENT_KEYS = {
    "event_id",
    "invitation_id",
    "org_id",
    "org_name",
    "email",
    "role",
    "inviter_name",
    "inviter_email",
    "expires_at",
}
NOT_FOUND = {"detail": "Invitation not found"}
INVALID = {"detail": "Invalid or expired invitation"}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def invite(client, email="bob@example.com", role="editor") -> dict:
    r = await client.post("/api/organisations/invite", json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


async def token_of(db, invitation_id: str) -> str:
    """A working accept token, issued as the notifications service gets it (IssueInvitationLink)."""
    async with db() as s:
        return (await links.issue_link(s, uuid.UUID(invitation_id))).token


async def invitation_ids(db, org_id) -> set[str]:
    async with db() as s:
        rows = (await s.execute(text("SELECT id FROM invitations WHERE organisation_id = :o"), {"o": org_id})).all()
    return {str(r.id) for r in rows}


# -------------------------------------------------------------------------------------- invite


async def test_invite(clients, world, db, outbox):
    r = await clients.owner.post("/api/organisations/invite", json={"email": " bob@example.com ", "role": "editor"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == INVITATION_KEYS
    assert (body["email"], body["role"]) == ("bob@example.com", "editor")
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["expires_at"])
    assert abs(parse(body["expires_at"]) - parse(body["created_at"]) - timedelta(days=7)) < timedelta(seconds=2)
    events = await outbox("identity.invitation.created")
    assert len(events) == 1
    event = events[0]["payload"]
    assert set(event) == EVENT_KEYS  # no token, no link: the stream opens no invitation
    assert event == {
        "event_id": events[0]["msg_id"],
        "invitation_id": body["id"],
        "org_id": str(world.org_a),
        "org_name": "Org A",
        "email": "bob@example.com",
        "role": "editor",
        "inviter_name": "Owner A",
        "inviter_email": "owner@a.example",
        "expires_at": event["expires_at"],
    }
    assert parse(event["expires_at"]) == parse(body["expires_at"])
    token = await token_of(db, body["id"])
    assert len(token) >= 43
    assert token not in str(await outbox())
    async with db() as s:
        row = (await s.execute(text("SELECT token_hash, invited_by FROM invitations"))).one()
    assert row.token_hash == hash_token(token)  # stored hashed, never in clear
    assert row.invited_by == world.owner.user_id
    assert token not in r.text


async def test_invite_defaults_and_inviter_without_name(clients, world, outbox, join):
    await join(world.viewer, world.org_b, "admin")  # the viewer (no name) is an admin of org B
    body = await invite(clients.viewer, "carol@example.com", role="viewer")
    r = await clients.viewer.post("/api/organisations/invite", json={"email": "dan@example.com"})
    assert (r.status_code, r.json()["role"]) == (201, "viewer")
    event = (await outbox("identity.invitation.created"))[0]["payload"]
    assert (event["invitation_id"], event["org_name"]) == (body["id"], "Org B")
    assert event["inviter_name"] == event["inviter_email"] == "viewer@a.example"


async def test_invite_allows_members(clients, world):
    body = await invite(clients.owner, "editor@a.example", "admin")
    assert [i["id"] for i in (await clients.owner.get("/api/organisations/invitations")).json()] == [body["id"]]


async def test_a_repeated_address_is_sent_again_not_duplicated(clients, world, db, outbox, client_for, make_user):
    first = await invite(clients.owner, "bob@example.com", "editor")
    old_token = await token_of(db, first["id"])
    second = await invite(clients.admin, "BOB@example.com ", "admin")  # same address, the latest role wins
    assert set(second) == INVITATION_KEYS
    listed = (await clients.owner.get("/api/organisations/invitations")).json()
    assert [(i["id"], i["email"], i["role"]) for i in listed] == [(second["id"], "BOB@example.com", "admin")]
    assert parse(second["expires_at"]) >= parse(first["expires_at"])
    events = await outbox("identity.invitation.created")
    assert [e["payload"]["invitation_id"] for e in events] == [first["id"], second["id"]]  # e-mailed again
    bob = client_for((await make_user("bob@example.com", "Bob")).token)
    r = await bob.post("/api/auth/accept-invite", json={"token": old_token})
    assert (r.status_code, r.json()) == (400, INVALID)  # only the latest link works
    r = await bob.post("/api/auth/accept-invite", json={"token": await token_of(db, second["id"])})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_concurrent_invitations_of_one_address_leave_one(clients, world, db):
    answers = await asyncio.gather(
        *(clients.owner.post("/api/organisations/invite", json={"email": "race@example.com"}) for _ in range(4))
    )
    assert [r.status_code for r in answers] == [201] * 4
    assert len(await invitation_ids(db, world.org_a)) == 1


@pytest.fixture
def limited(make_app, client_for, world):
    """Owner clients of org A and org B on an app with small invitation limits."""
    app = make_app(invitations_per_organisation=3, invitations_per_address=2)
    return client_for(world.owner.token, app_=app), client_for(world.other.token, app_=app)


def assert_limited(r, what: str) -> None:
    assert r.status_code == 429, r.text
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 3600
    assert r.json() == {"detail": f"Too many invitations sent to {what} recently; try again in {retry} seconds"}


async def test_invitations_are_rate_limited_per_organisation(limited, world, db, outbox):
    owner_a, owner_b = limited
    answers = await asyncio.gather(
        *(owner_a.post("/api/organisations/invite", json={"email": f"p{i}@example.com"}) for i in range(10))
    )
    assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 7
    assert_limited(next(r for r in answers if r.status_code == 429), "this organisation")
    assert len(await invitation_ids(db, world.org_a)) == 3
    assert len(await outbox("identity.invitation.created")) == 3
    # Resending is sending too; revoking does not give the quota back.
    some = next(iter(await invitation_ids(db, world.org_a)))
    assert_limited(await owner_a.post(f"/api/organisations/invitations/{some}/resend"), "this organisation")
    assert (await owner_a.delete(f"/api/organisations/invitations/{some}")).status_code == 200
    assert_limited(
        await owner_a.post("/api/organisations/invite", json={"email": "q@example.com"}), "this organisation"
    )
    # Another organisation has its own quota.
    assert (await owner_b.post("/api/organisations/invite", json={"email": "q@example.com"})).status_code == 201


async def test_invitations_are_rate_limited_per_address(limited, world, db, outbox):
    owner_a, owner_b = limited
    assert (await owner_a.post("/api/organisations/invite", json={"email": "x@example.com"})).status_code == 201
    assert (await owner_b.post("/api/organisations/invite", json={"email": "X@example.com"})).status_code == 201
    assert_limited(await owner_a.post("/api/organisations/invite", json={"email": "x@example.com"}), "this address")
    assert_limited(await owner_b.post("/api/organisations/invite", json={"email": "x@EXAMPLE.com"}), "this address")
    assert len(await outbox("identity.invitation.created")) == 2
    assert (await owner_a.post("/api/organisations/invite", json={"email": "y@example.com"})).status_code == 201


@pytest.mark.parametrize("role", ["superuser", "owner", "", "ADMIN", None, 1])
async def test_invite_rejects_unknown_roles(clients, db, role):
    r = await clients.owner.post("/api/organisations/invite", json={"email": "bob@example.com", "role": role})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "role"]
    assert detail[0]["type"] == "literal_error"
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM invitations"))).scalar_one() == 0


@pytest.mark.parametrize("body", [{}, {"role": "viewer"}, {"email": "x"}, {"email": "  "}, {"email": "a b@c"}])
async def test_invite_rejects_missing_or_malformed_emails(clients, body):
    r = await clients.owner.post("/api/organisations/invite", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "email"]


async def test_invite_denials_and_precedence(clients, db):
    expected = [
        (clients.anonymous, 401, "Not authenticated"),
        (clients.invalid, 401, "Invalid or expired session"),
        (clients.no_org, 400, "No organisation selected"),
        (clients.removed, 403, "Not a member of this organisation"),
        (clients.viewer, 403, "Requires admin role or higher"),
        (clients.editor, 403, "Requires admin role or higher"),
    ]
    for client, status, detail in expected:
        for body in ({"email": "bob@example.com", "role": "editor"}, {"email": "x", "role": "superuser"}):
            r = await client.post("/api/organisations/invite", json=body)
            assert (r.status_code, r.json()) == (status, {"detail": detail})
        r = await client.post("/api/organisations/invite", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "json_invalid"
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM invitations"))).scalar_one() == 0


# ---------------------------------------------------------------------------------------- list


async def test_list_invitations_includes_expired_ones_and_is_scoped(clients, world, db):
    mine = [await invite(clients.owner, f"u{i}@example.com", "viewer") for i in range(3)]
    await invite(clients.other_org, "b@example.com", "admin")
    async with db() as s:
        await s.execute(
            text("UPDATE invitations SET expires_at = now() - interval '1 day' WHERE id = :id"), {"id": mine[0]["id"]}
        )
    r = await clients.admin.get("/api/organisations/invitations")
    assert r.status_code == 200
    listed = r.json()
    assert all(set(i) == INVITATION_KEYS for i in listed)
    assert sorted(i["id"] for i in listed) == sorted(i["id"] for i in mine)
    assert [i["email"] for i in (await clients.other_org.get("/api/organisations/invitations")).json()] == [
        "b@example.com"
    ]


async def test_list_invitations_denials(clients):
    expected = [
        (clients.anonymous, 401, "Not authenticated"),
        (clients.invalid, 401, "Invalid or expired session"),
        (clients.no_org, 400, "No organisation selected"),
        (clients.removed, 403, "Not a member of this organisation"),
        (clients.viewer, 403, "Requires admin role or higher"),
        (clients.editor, 403, "Requires admin role or higher"),
    ]
    for client, status, detail in expected:
        r = await client.get("/api/organisations/invitations")
        assert (r.status_code, r.json()) == (status, {"detail": detail})


# ------------------------------------------------------------------------------ revoke, resend


async def test_revoke_invitation(clients, world, db, outbox, client_for):
    body = await invite(clients.owner)
    token = await token_of(db, body["id"])
    r = await clients.admin.delete(f"/api/organisations/invitations/{body['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert await invitation_ids(db, world.org_a) == set()
    r = await clients.admin.delete(f"/api/organisations/invitations/{body['id']}")
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    r = await clients.no_org.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (400, INVALID)


async def test_resend_invitation(clients, world, db, outbox):
    body = await invite(clients.owner, "fresh@example.com", "admin")
    old_token = await token_of(db, body["id"])
    r = await clients.admin.post(f"/api/organisations/invitations/{body['id']}/resend")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    listed = (await clients.owner.get("/api/organisations/invitations")).json()
    assert len(listed) == 1
    new = listed[0]
    assert new["id"] != body["id"]
    assert (new["email"], new["role"]) == ("fresh@example.com", "admin")
    events = await outbox("identity.invitation.created")
    assert len(events) == 2
    resent = events[1]["payload"]
    assert resent["invitation_id"] == new["id"]
    new_token = await token_of(db, new["id"])
    assert new_token != old_token
    assert (resent["inviter_email"], resent["inviter_name"]) == ("admin@a.example", "Admin A")
    async with db() as s:
        invited_by = (await s.execute(text("SELECT invited_by FROM invitations"))).scalar_one()
    assert invited_by == world.admin.user_id
    r = await clients.no_org.post("/api/auth/accept-invite", json={"token": old_token})
    assert (r.status_code, r.json()) == (400, INVALID)  # the old link no longer works
    r = await clients.no_org.post("/api/auth/accept-invite", json={"token": new_token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_resend_an_expired_invitation(clients, db, outbox):
    body = await invite(clients.owner)
    async with db() as s:
        await s.execute(text("UPDATE invitations SET expires_at = now() - interval '1 day'"))
    r = await clients.owner.post(f"/api/organisations/invitations/{body['id']}/resend")
    assert r.status_code == 200
    new = (await clients.owner.get("/api/organisations/invitations")).json()[0]
    assert parse(new["expires_at"]) > parse(new["created_at"]) + timedelta(days=6)


async def test_cross_organisation_revoke_and_resend_are_404_and_change_nothing(clients, world, db, outbox):
    body = await invite(clients.owner)
    before = await invitation_ids(db, world.org_a)
    for path in (f"/api/organisations/invitations/{body['id']}", f"/api/organisations/invitations/{uuid.uuid4()}"):
        r = await clients.other_org.delete(path)
        assert (r.status_code, r.json()) == (404, NOT_FOUND)
        r = await clients.other_org.post(path + "/resend")
        assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert await invitation_ids(db, world.org_a) == before
    assert len(await outbox("identity.invitation.created")) == 1


async def test_revoke_and_resend_denials(clients, db, world):
    body = await invite(clients.owner)
    expected = [
        (clients.anonymous, 401, "Not authenticated"),
        (clients.invalid, 401, "Invalid or expired session"),
        (clients.no_org, 400, "No organisation selected"),
        (clients.removed, 403, "Not a member of this organisation"),
        (clients.viewer, 403, "Requires admin role or higher"),
        (clients.editor, 403, "Requires admin role or higher"),
    ]
    for client, status, detail in expected:
        for invitation_id in (body["id"], "not-a-uuid"):
            r = await client.delete(f"/api/organisations/invitations/{invitation_id}")
            assert (r.status_code, r.json()) == (status, {"detail": detail})
            r = await client.post(f"/api/organisations/invitations/{invitation_id}/resend")
            assert (r.status_code, r.json()) == (status, {"detail": detail})
    assert await invitation_ids(db, world.org_a) == {body["id"]}
    r = await clients.owner.delete("/api/organisations/invitations/not-a-uuid")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "invitation_id"]


# -------------------------------------------------------------------------------------- accept


async def test_accept_invitation_joins_and_switches_the_session(clients, world, db, outbox):
    body = await invite(clients.owner, "fresh@example.com", "editor")
    token = await token_of(db, body["id"])
    r = await clients.no_org.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    me = (await clients.no_org.get("/api/auth/me")).json()
    assert me["organisation"]["id"] == str(world.org_a)
    assert me["role"] == "editor"
    assert me["last_organisation_id"] == str(world.org_a)
    assert await invitation_ids(db, world.org_a) == set()
    members = (await clients.no_org.get("/api/organisations/members")).json()
    assert {"email": "fresh@example.com", "role": "editor"}.items() <= next(
        m for m in members if m["id"] == str(world.no_org.user_id)
    ).items()
    switched = (await outbox("identity.session.switched"))[-1]["payload"]
    assert (switched["session_id"], switched["org_id"]) == (str(world.no_org.session_id), str(world.org_a))
    # Single use.
    r = await clients.other_org.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (400, INVALID)


async def test_accept_when_already_a_member_keeps_the_role(clients, world, db, outbox):
    body = await invite(clients.owner, "viewer@a.example", "admin")
    token = await token_of(db, body["id"])
    await clients.viewer.post("/api/organisations", json={"name": "Elsewhere"})  # active org is now another
    r = await clients.viewer.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (200, {"status": "already_member"})
    me = (await clients.viewer.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"]) == (str(world.org_a), "viewer")
    assert await invitation_ids(db, world.org_a) == set()


async def test_a_removed_member_can_rejoin_with_a_new_invitation(clients, world, db, outbox):
    body = await invite(clients.owner, "removed@a.example", "viewer")
    r = await clients.removed.post("/api/auth/accept-invite", json={"token": await token_of(db, body["id"])})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert (await clients.removed.get("/api/organisations/members")).status_code == 200


async def test_accept_expired_or_unknown_invitation(clients, world, db, outbox):
    body = await invite(clients.owner, "fresh@example.com", "admin")
    token = await token_of(db, body["id"])
    async with db() as s:
        await s.execute(text("UPDATE invitations SET expires_at = now() - interval '1 second'"))
    for candidate in (token, "nope", "", "x" * 5000):
        r = await clients.no_org.post("/api/auth/accept-invite", json={"token": candidate})
        assert (r.status_code, r.json()) == (400, INVALID)
    me = (await clients.no_org.get("/api/auth/me")).json()
    assert me["organisation"] is None
    async with db() as s:
        count = (
            await s.execute(text("SELECT count(*) FROM memberships WHERE user_id = :u"), {"u": world.no_org.user_id})
        ).scalar_one()
    assert count == 0


async def test_accept_denials_and_validation(clients, db, outbox):
    body = await invite(clients.owner, "fresh@example.com")
    token = await token_of(db, body["id"])
    r = await clients.anonymous.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await clients.invalid.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})
    r = await clients.anonymous.post("/api/auth/accept-invite", json={})
    assert r.status_code == 401
    r = await clients.no_org.post("/api/auth/accept-invite", json={})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "token"]
    # Still valid after all that.
    r = await clients.no_org.post("/api/auth/accept-invite", json={"token": token})
    assert r.json() == {"status": "ok"}


async def test_only_the_invited_address_can_accept(clients, world, db, outbox, make_user, client_for):
    """Frank's invitation link, forwarded or intercepted, is no good to Mallory (nor to a member)."""
    body = await invite(clients.owner, "Frank@Example.com", "admin")
    token = await token_of(db, body["id"])
    mallory = client_for((await make_user("mallory@evil.test", "Mallory")).token)
    refused = {"detail": "This invitation was sent to another e-mail address: sign in with that address to accept it"}
    for intruder in (mallory, clients.no_org, clients.other_org, clients.viewer):
        r = await intruder.post("/api/auth/accept-invite", json={"token": token})
        assert (r.status_code, r.json()) == (403, refused)
    assert await invitation_ids(db, world.org_a) == {body["id"]}  # still pending
    me = (await mallory.get("/api/auth/me")).json()
    assert me["organisation"] is None
    async with db() as s:
        members = (
            await s.execute(text("SELECT count(*) FROM memberships WHERE organisation_id = :o"), {"o": world.org_a})
        ).scalar_one()
    assert members == 4  # owner, admin, editor, viewer
    frank = client_for((await make_user("frank@example.COM", "Frank")).token)  # case does not matter
    r = await frank.post("/api/auth/accept-invite", json={"token": token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert (await frank.get("/api/auth/me")).json()["role"] == "admin"
