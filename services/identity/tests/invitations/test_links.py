"""identity.v1 IssueInvitationLink: the notifications service's only way to an invitation's accept
link (events carry no token). Each call mints a new token; only pending invitations have one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from icp_common.grpc import internal_token
from icp_common.identity import INTERNAL_TOKEN_HEADER
from icp_identity.rpc import start_grpc
from icp_identity.security import hash_token
from icp_protos.interloper.identity.v1 import identity_pb2 as pb
from icp_protos.interloper.identity.v1 import identity_pb2_grpc


@pytest.fixture
async def stub(settings, sessions, internal_secret, signer) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    server, port = await start_grpc(settings, sessions, internal_secret, signer, port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    await server.stop(grace=None)


@pytest.fixture
def md(internal_secret) -> tuple[tuple[str, str], ...]:
    return ((INTERNAL_TOKEN_HEADER, internal_token(internal_secret)),)


async def invite(client: Any, email: str = "bob@example.com") -> str:
    r = await client.post("/api/organisations/invite", json={"email": email, "role": "editor"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_a_pending_invitation_gets_a_fresh_working_token(clients, world, db, stub, md, make_user, client_for):
    invitation_id = await invite(clients.owner)
    first = await stub.IssueInvitationLink(pb.IssueInvitationLinkRequest(invitation_id=invitation_id), metadata=md)
    second = await stub.IssueInvitationLink(pb.IssueInvitationLinkRequest(invitation_id=invitation_id), metadata=md)
    assert len(second.token) >= 43 and second.token != first.token
    async with db() as s:
        stored = (await s.execute(text("SELECT token_hash FROM invitations"))).scalar_one()
    assert stored == hash_token(second.token)  # only the hash is kept; the earlier link is dead
    bob = client_for((await make_user("bob@example.com", "Bob")).token)
    r = await bob.post("/api/auth/accept-invite", json={"token": first.token})
    assert r.status_code == 400
    r = await bob.post("/api/auth/accept-invite", json={"token": second.token})
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    # Accepted: the invitation is gone, no more links.
    call = stub.IssueInvitationLink(pb.IssueInvitationLinkRequest(invitation_id=invitation_id), metadata=md)
    assert await code_of(call) == grpc.StatusCode.NOT_FOUND


async def test_no_link_for_expired_revoked_or_unknown_invitations(clients, db, stub, md):
    expired = await invite(clients.owner, "old@example.com")
    revoked = await invite(clients.owner, "gone@example.com")
    async with db() as s:
        await s.execute(
            text("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = :i"), {"i": expired}
        )
    r = await clients.owner.delete(f"/api/organisations/invitations/{revoked}")
    assert r.status_code == 200, r.text
    for invitation_id in (expired, revoked, "00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        call = stub.IssueInvitationLink(pb.IssueInvitationLinkRequest(invitation_id=invitation_id), metadata=md)
        assert await code_of(call) == grpc.StatusCode.NOT_FOUND


async def test_no_link_without_the_internal_credential(clients, db, stub):
    invitation_id = await invite(clients.owner)
    async with db() as s:
        before = (await s.execute(text("SELECT token_hash FROM invitations"))).scalar_one()
    for metadata in ((), ((INTERNAL_TOKEN_HEADER, "0" * 64),)):
        call = stub.IssueInvitationLink(pb.IssueInvitationLinkRequest(invitation_id=invitation_id), metadata=metadata)
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED
    async with db() as s:
        assert (await s.execute(text("SELECT token_hash FROM invitations"))).scalar_one() == before
