"""/api/tokens (issue 18.2): create, list, revoke, and what a bearer `ilp_` token acts as.

Every refusal from the attacker's side: a lower role asking for more, a non-admin asking for a
service account or a token that never expires, another organisation's or member's token, and a
token trying to mint tokens or manage members and invitations."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy import text

from icp_common.grpc import internal_token
from icp_common.identity import INTERNAL_TOKEN_HEADER
from icp_identity.rpc import start_grpc
from icp_identity.tokens import service as tokens_service
from icp_protos.interloper.identity.v1 import identity_pb2 as pb
from icp_protos.interloper.identity.v1 import identity_pb2_grpc

CREATED_KEYS = {
    "id",
    "name",
    "role",
    "organisation_id",
    "token",
    "token_prefix",
    "created_at",
    "expires_at",
    "last_used_at",
    "service_account",
}
FORBIDDEN = {"detail": "Insufficient permissions"}


def parse(ts: str) -> datetime:
    assert ts.endswith("Z") and "T" in ts  # the organisations' format
    return datetime.fromisoformat(ts)


async def create(client, **body):
    body.setdefault("name", "ci")
    body.setdefault("role", "viewer")
    return await client.post("/api/tokens", json=body)


async def bearer_client(client_for, token: str):
    return client_for(headers={"Authorization": f"Bearer {token}"})


async def test_create_answers_the_contract_and_stores_only_a_hash(clients, world, db):
    r = await create(clients.editor, name="deploy bot", role="editor")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == CREATED_KEYS
    token = body["token"]
    assert token.startswith("ilp_") and len(token) >= 4 + 43  # 32 random bytes, base64url
    assert body["token_prefix"] == token[:12]
    assert (body["name"], body["role"], body["organisation_id"]) == ("deploy bot", "editor", str(world.org_a))
    assert body["last_used_at"] is None and body["service_account"] is False
    # Absent expires_in_days: 90 days.
    assert parse(body["expires_at"]) - parse(body["created_at"]) == timedelta(days=90)
    async with db() as s:
        stored = (await s.execute(text("SELECT * FROM api_tokens"))).mappings().one()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in stored.values()}
    assert stored["user_id"] == world.editor.user_id
    # Two tokens never share their secret.
    assert (await create(clients.editor)).json()["token"] != token


@pytest.mark.parametrize(("who", "role"), [("viewer", "editor"), ("viewer", "admin"), ("editor", "admin")])
async def test_a_role_above_the_callers_is_refused(clients, db, who, role):
    r = await create(getattr(clients, who), role=role)
    assert (r.status_code, r.json()) == (403, FORBIDDEN)
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM api_tokens"))).scalar() == 0


async def test_never_expiring_and_service_account_tokens_are_for_admins(clients):
    for body in ({"expires_in_days": None}, {"service_account": True}):
        for client in (clients.viewer, clients.editor):
            r = await create(client, **body)
            assert (r.status_code, r.json()) == (403, FORBIDDEN)
    r = await create(clients.admin, role="admin", expires_in_days=None)
    assert r.status_code == 201 and r.json()["expires_at"] is None
    r = await create(clients.admin, role="editor", service_account=True, expires_in_days=7)
    assert r.status_code == 201 and r.json()["service_account"] is True
    assert parse(r.json()["expires_at"]) - parse(r.json()["created_at"]) == timedelta(days=7)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "role": "viewer"},
        {"name": "x" * 101, "role": "viewer"},
        {"name": 5, "role": "viewer"},
        {"role": "viewer"},
        {"name": "ci"},
        {"name": "ci", "role": "owner"},
        {"name": "ci", "role": "viewer", "expires_in_days": 0},
        {"name": "ci", "role": "viewer", "expires_in_days": 366},
        {"name": "ci", "role": "viewer", "expires_in_days": "30"},
        {"name": "ci", "role": "viewer", "expires_in_days": 1.5},
        {"name": "ci", "role": "viewer", "service_account": "yes"},
    ],
)
async def test_validation_errors_are_422(clients, body):
    r = await clients.admin.post("/api/tokens", json=body)
    assert r.status_code == 422, r.text


async def test_outsiders_are_refused(clients):
    assert (await create(clients.anonymous)).status_code == 401
    assert (await create(clients.removed)).status_code == 403  # no longer a member
    assert (await clients.no_org.get("/api/tokens")).status_code == 400  # no organisation


async def test_list_is_own_tokens_newest_first_admins_see_all(clients, world):
    v1 = (await create(clients.viewer, name="v1")).json()
    e1 = (await create(clients.editor, name="e1")).json()
    v2 = (await create(clients.viewer, name="v2")).json()
    sa = (await create(clients.admin, name="sa", service_account=True)).json()
    await create(clients.other_org, name="b")
    r = await clients.viewer.get("/api/tokens")
    assert r.status_code == 200
    assert [t["name"] for t in r.json()] == ["v2", "v1"]
    assert all("token" not in t and set(t) == CREATED_KEYS - {"token"} for t in r.json())
    assert r.json()[0]["id"] == v2["id"] and r.json()[1]["token_prefix"] == v1["token_prefix"]
    assert [t["name"] for t in (await clients.editor.get("/api/tokens")).json()] == ["e1"]
    admin_view = (await clients.admin.get("/api/tokens")).json()
    assert [t["id"] for t in admin_view] == [sa["id"], v2["id"], e1["id"], v1["id"]]
    assert [t["name"] for t in (await clients.other_org.get("/api/tokens")).json()] == ["b"]


async def test_revoke(clients, world, outbox):
    own = (await create(clients.viewer)).json()
    editors = (await create(clients.editor)).json()
    foreign = (await create(clients.other_org)).json()
    not_found = {"detail": "Token not found"}
    # Another member's token (not an admin), another organisation's, unknown, malformed: 404.
    for client, token_id in (
        (clients.viewer, editors["id"]),
        (clients.admin, foreign["id"]),
        (clients.viewer, str(uuid.uuid4())),
        (clients.viewer, "not-a-uuid"),
    ):
        r = await client.delete(f"/api/tokens/{token_id}")
        assert (r.status_code, r.json()) == (404, not_found)
    r = await clients.viewer.delete(f"/api/tokens/{own['id']}")
    assert (r.status_code, r.content) == (204, b"")
    assert (await clients.viewer.get("/api/tokens")).json() == []
    r = await clients.viewer.delete(f"/api/tokens/{own['id']}")  # already revoked
    assert (r.status_code, r.json()) == (404, not_found)
    assert (await clients.admin.delete(f"/api/tokens/{editors['id']}")).status_code == 204  # admin: any
    events = await outbox("identity.token.revoked")
    assert [(e["payload"]["token_id"], e["payload"]["org_id"]) for e in events] == [
        (own["id"], str(world.org_a)),
        (editors["id"], str(world.org_a)),
    ]


async def test_bearer_acts_with_the_lower_of_token_and_owner_roles(clients, client_for, world, db):
    admin_token = (await create(clients.admin, role="admin")).json()["token"]
    viewer_scoped = (await create(clients.admin, role="viewer")).json()["token"]
    as_admin = await bearer_client(client_for, admin_token)
    me = (await as_admin.get("/api/auth/me")).json()
    assert (me["id"], me["role"], me["organisation"]["id"]) == (str(world.admin.user_id), "admin", str(world.org_a))
    as_viewer = await bearer_client(client_for, viewer_scoped)
    assert (await as_viewer.get("/api/auth/me")).json()["role"] == "viewer"
    # The owner is demoted: the token follows (its own role is only an upper bound).
    async with db() as s:
        await s.execute(text("UPDATE memberships SET role = 'editor' WHERE user_id = :u"), {"u": world.admin.user_id})
    assert (await as_admin.get("/api/auth/me")).json()["role"] == "editor"


async def test_invalid_tokens(clients, client_for, db, world):
    token = (await create(clients.editor)).json()
    async with db() as s:
        for raw in ("ilp_unknown", "ilp_" + "x" * 600, "not-an-api-token", ""):
            assert (await tokens_service.authenticate_until(s, raw))[0].state == "invalid"
        ok, expires_in = await tokens_service.authenticate_until(s, token["token"])
        assert ok.state == "ok" and ok.token_id == token["id"] and ok.session_id is None
        assert expires_in is not None and timedelta(days=89) < expires_in <= timedelta(days=90)
        await s.execute(text("UPDATE api_tokens SET expires_at = now() - interval '1 second'"))
        assert (await tokens_service.authenticate_until(s, token["token"]))[0].state == "invalid"
    revoked = (await create(clients.editor)).json()
    await clients.editor.delete(f"/api/tokens/{revoked['id']}")
    async with db() as s:
        assert (await tokens_service.authenticate_until(s, revoked["token"]))[0].state == "invalid"
    for raw in (revoked["token"], token["token"], "ilp_unknown"):
        r = await (await bearer_client(client_for, raw)).get("/api/organisations/members")
        assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired token"})


async def test_owner_removal_ends_their_tokens_but_not_service_accounts(clients, client_for, world, db):
    own = (await create(clients.editor, role="editor")).json()["token"]
    service = (await create(clients.admin, role="editor", service_account=True)).json()
    creator_token = (await create(clients.admin)).json()["token"]
    r = await clients.owner.delete(f"/api/organisations/members/{world.admin.user_id}")
    assert r.status_code == 200
    r = await clients.owner.delete(f"/api/organisations/members/{world.editor.user_id}")
    assert r.status_code == 200
    for token in (own, creator_token):
        r = await (await bearer_client(client_for, token)).get("/api/auth/me")
        assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired token"})
    # Even were the owner to come back, the removed member's tokens stay revoked.
    async with db() as s:
        revoked = (await s.execute(text("SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL"))).scalar()
    assert revoked == 2
    as_service = await bearer_client(client_for, service["token"])
    me = (await as_service.get("/api/auth/me")).json()
    assert (me["id"], me["role"], me["name"]) == (service["id"], "editor", "ci")
    assert service["id"] in [t["id"] for t in (await clients.owner.get("/api/tokens")).json()]


async def test_a_token_cannot_mint_tokens_nor_manage_members_or_invitations(clients, client_for, world, db):
    admin_token = (await create(clients.admin, role="admin", expires_in_days=None)).json()
    service = (await create(clients.admin, role="admin", service_account=True)).json()
    for token in (admin_token, service):
        attacker = await bearer_client(client_for, token["token"])
        attempts = [
            await attacker.post("/api/tokens", json={"name": "more", "role": "admin"}),
            await attacker.post("/api/tokens", json={"name": ""}),  # refused before validation
            await attacker.get("/api/tokens"),
            await attacker.delete(f"/api/tokens/{admin_token['id']}"),
            await attacker.delete(f"/api/organisations/members/{world.editor.user_id}"),
            await attacker.post("/api/organisations/invite", json={"email": "x@evil.example", "role": "admin"}),
            await attacker.get("/api/organisations/invitations"),
            await attacker.post("/api/auth/accept-invite", json={"token": "whatever"}),
            await attacker.post("/api/auth/switch-org", json={"organisation_id": str(world.org_a)}),
            await attacker.post("/api/auth/logout"),
            await attacker.post("/api/organisations", json={"name": "elsewhere"}),
        ]
        assert [r.status_code for r in attempts] == [403] * len(attempts), [r.text for r in attempts]
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM api_tokens"))).scalar() == 2
        assert (await s.execute(text("SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL"))).scalar() == 0
        assert (await s.execute(text("SELECT count(*) FROM invitations"))).scalar() == 0
        members = (
            await s.execute(text("SELECT count(*) FROM memberships WHERE organisation_id = :o"), {"o": world.org_a})
        ).scalar()
    assert members == 4
    assert (await clients.admin.get("/api/auth/me")).status_code == 200  # not signed out
    # What a token may do: read its organisation's members.
    attacker = await bearer_client(client_for, admin_token["token"])
    assert (await attacker.get("/api/organisations/members")).status_code == 200


async def test_last_used_at_is_written_at_most_once_a_minute(clients, db):
    token = (await create(clients.editor)).json()

    async def last_used():
        async with db() as s:
            return (await s.execute(text("SELECT last_used_at FROM api_tokens"))).scalar()

    async with db() as s:
        await tokens_service.authenticate_until(s, token["token"])
    first = await last_used()
    assert first is not None
    for _ in range(3):
        async with db() as s:
            await tokens_service.authenticate_until(s, token["token"])
    assert await last_used() == first  # no write per request
    async with db() as s:
        await s.execute(text("UPDATE api_tokens SET last_used_at = now() - interval '61 seconds'"))
    stale = await last_used()
    async with db() as s:
        await tokens_service.authenticate_until(s, token["token"])
    assert await last_used() > stale
    listed = (await clients.editor.get("/api/tokens")).json()[0]["last_used_at"]
    assert parse(listed) == await last_used()


# ---- gRPC Authenticate ----------------------------------------------------------------------


@pytest.fixture
async def stub(settings, sessions, internal_secret, signer) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    server, port = await start_grpc(settings, sessions, internal_secret, signer, port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    await server.stop(grace=None)


async def test_authenticate_rpc_resolves_api_tokens(stub, clients, world, internal_secret):
    md = ((INTERNAL_TOKEN_HEADER, internal_token(internal_secret)),)
    user = (await create(clients.editor, role="editor")).json()
    service = (await create(clients.admin, role="viewer", service_account=True, expires_in_days=None)).json()
    # The API token beats the session token sent alongside.
    reply = await stub.Authenticate(
        pb.AuthenticateRequest(api_token=user["token"], session_token=world.admin.token), metadata=md
    )
    assert (reply.state, reply.user_id, reply.role, reply.token_id, reply.session_id, reply.service_account) == (
        pb.AUTH_STATE_OK,
        str(world.editor.user_id),
        "editor",
        user["id"],
        "",
        False,
    )
    assert 0 < reply.expires_in_ms <= 90 * 86_400_000
    reply = await stub.Authenticate(pb.AuthenticateRequest(api_token=service["token"]), metadata=md)
    assert (reply.user_id, reply.role, reply.token_id, reply.service_account, reply.expires_in_ms) == (
        service["id"],
        "viewer",
        service["id"],
        True,
        0,
    )
    reply = await stub.Authenticate(pb.AuthenticateRequest(api_token="ilp_nope"), metadata=md)
    assert reply.state == pb.AUTH_STATE_INVALID


async def test_a_token_sees_only_its_own_organisation(clients, client_for, world, join):
    await join(world.admin, world.org_b, "viewer")  # the owner belongs to another organisation too
    await clients.admin.post("/api/auth/switch-org", json={"organisation_id": str(world.org_a)})
    assert len((await clients.admin.get("/api/organisations")).json()) == 2
    token = (await create(clients.admin)).json()["token"]
    listed = (await (await bearer_client(client_for, token)).get("/api/organisations")).json()
    assert [o["id"] for o in listed] == [str(world.org_a)]
