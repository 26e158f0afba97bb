"""/api/organisations/members (spec 2.5): list (viewer) and remove (admin), tenant-scoped."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import text

from icp_common.identity import IDENTITY_HEADER, Identity

MEMBER_KEYS = {"id", "email", "name", "avatar_url", "role"}


async def memberships(db, org_id) -> dict[str, str]:
    async with db() as s:
        rows = (
            await s.execute(text("SELECT user_id, role FROM memberships WHERE organisation_id = :o"), {"o": org_id})
        ).all()
    return {str(r.user_id): r.role for r in rows}


async def test_list_members(clients, world):
    for client in (clients.viewer, clients.editor, clients.admin, clients.owner):
        r = await client.get("/api/organisations/members")
        assert r.status_code == 200
        members = r.json()
        assert all(set(m) == MEMBER_KEYS for m in members)
        assert sorted((m["id"], m["email"], m["name"], m["avatar_url"], m["role"]) for m in members) == sorted(
            [
                (str(world.owner.user_id), "owner@a.example", "Owner A", None, "admin"),
                (str(world.admin.user_id), "admin@a.example", "Admin A", None, "admin"),
                (str(world.editor.user_id), "editor@a.example", "Editor A", None, "editor"),
                (str(world.viewer.user_id), "viewer@a.example", None, None, "viewer"),
            ]
        )
    r = await clients.other_org.get("/api/organisations/members")
    assert [m["email"] for m in r.json()] == ["admin@b.example"]


async def test_list_members_is_a_fixed_number_of_queries(clients, make_user, join, world, count_queries):
    for i in range(10):
        await join(await make_user(f"m{i}@a.example"), world.org_a, "viewer")
    with count_queries() as counter:
        r = await clients.viewer.get("/api/organisations/members")
    assert len(r.json()) == 14
    assert counter.count == 2  # Authenticate (in the gateway-like client) + the list


async def test_role_and_scope_denials(clients):
    expected = [
        (clients.anonymous, 401, "Not authenticated"),
        (clients.invalid, 401, "Invalid or expired session"),
        (clients.no_org, 400, "No organisation selected"),
        (clients.removed, 403, "Not a member of this organisation"),
    ]
    for client, status, detail in expected:
        r = await client.get("/api/organisations/members")
        assert (r.status_code, r.json()) == (status, {"detail": detail})


async def test_organisation_not_found(app, world, signer):
    gone = Identity(
        state="ok",
        user_id=str(world.owner.user_id),
        session_id=str(world.owner.session_id),
        org_id=str(uuid.uuid4()),
        org_exists=False,
        role=None,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.get("/api/organisations/members", headers={IDENTITY_HEADER: signer.sign(gone)})
    assert (r.status_code, r.json()) == (404, {"detail": "Organisation not found"})


async def test_remove_member(clients, world, db, outbox):
    r = await clients.admin.delete(f"/api/organisations/members/{world.editor.user_id}")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert str(world.editor.user_id) not in await memberships(db, world.org_a)
    # The removed member is refused on the very next request.
    r = await clients.editor.get("/api/organisations/members")
    assert (r.status_code, r.json()) == (403, {"detail": "Not a member of this organisation"})
    events = await outbox("identity.membership.removed")
    assert [e["payload"] for e in events] == [
        {"event_id": events[0]["payload"]["event_id"], "org_id": str(world.org_a), "user_id": str(world.editor.user_id)}
    ]
    # Any admin can remove another admin.
    r = await clients.admin.delete(f"/api/organisations/members/{world.owner.user_id}")
    assert r.status_code == 200


async def test_remove_member_errors(clients, world, db):
    before_a, before_b = await memberships(db, world.org_a), await memberships(db, world.org_b)
    r = await clients.owner.delete(f"/api/organisations/members/{world.owner.user_id}")
    assert (r.status_code, r.json()) == (400, {"detail": "Cannot remove yourself"})
    for user_id in (world.other.user_id, world.removed.user_id, world.no_org.user_id, uuid.uuid4()):
        r = await clients.owner.delete(f"/api/organisations/members/{user_id}")
        assert (r.status_code, r.json()) == (404, {"detail": "Member not found"})
    # Org B's admin cannot remove org A's members: they are not members of B.
    for user_id in (world.owner.user_id, world.viewer.user_id):
        r = await clients.other_org.delete(f"/api/organisations/members/{user_id}")
        assert (r.status_code, r.json()) == (404, {"detail": "Member not found"})
    r = await clients.owner.delete("/api/organisations/members/not-a-uuid")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "uuid_parsing"
    assert r.json()["detail"][0]["loc"] == ["path", "user_id"]
    assert (await memberships(db, world.org_a), await memberships(db, world.org_b)) == (before_a, before_b)


async def test_remove_member_denials_and_precedence(clients, world, db):
    before = await memberships(db, world.org_a)
    target = f"/api/organisations/members/{world.viewer.user_id}"
    expected = [
        (clients.anonymous, 401, "Not authenticated"),
        (clients.invalid, 401, "Invalid or expired session"),
        (clients.no_org, 400, "No organisation selected"),
        (clients.removed, 403, "Not a member of this organisation"),
        (clients.viewer, 403, "Requires admin role or higher"),
        (clients.editor, 403, "Requires admin role or higher"),
    ]
    for client, status, detail in expected:
        for path in (target, "/api/organisations/members/not-a-uuid"):  # auth errors win over a bad path
            r = await client.delete(path)
            assert (r.status_code, r.json()) == (status, {"detail": detail}), (path, detail)
    assert await memberships(db, world.org_a) == before


async def test_two_admins_removing_each_other_at_once_leave_an_admin(client_for, make_user, join, db):
    """Each request was authorised as an admin before the other committed; only one may win."""
    from icp_identity.organisations import service as organisations_service

    for attempt in range(15):
        first = await make_user(f"first{attempt}@race.example")
        second = await make_user(f"second{attempt}@race.example")
        async with db() as s:
            org_id = (await organisations_service.create(s, first.caller(), f"Race {attempt}")).id
        await join(second, org_id, "admin")
        one, two = client_for(first.token), client_for(second.token)
        answers = await asyncio.gather(
            one.delete(f"/api/organisations/members/{second.user_id}"),
            two.delete(f"/api/organisations/members/{first.user_id}"),
        )
        roles = await memberships(db, org_id)
        assert "admin" in roles.values(), (attempt, [(r.status_code, r.json()) for r in answers])
        assert sorted(r.status_code for r in answers) == [200, 403], [r.json() for r in answers]
        loser = next(r for r in answers if r.status_code == 403)
        assert loser.json() == {"detail": "Not a member of this organisation"}
        assert len(roles) == 1


async def test_the_last_admin_cannot_be_removed(world, db):
    """Even by a caller that is not a member (the system): the organisation keeps its admin."""
    from icp_common.caller import Role, member_of
    from icp_common.errors import Conflict
    from icp_identity.members import service as members_service

    system = member_of(Identity.system(str(world.org_b)), Role.ADMIN)
    with pytest.raises(Conflict, match="Cannot remove the last admin of the organisation"):
        async with db() as s:
            await members_service.remove_member(s, system, world.other.user_id)
    assert await memberships(db, world.org_b) == {str(world.other.user_id): "admin"}
