"""identity.v1 over a real grpc.aio channel with the shared interceptor (internal credential,
identity metadata, domain errors -> status codes)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from icp_common.grpc import internal_token
from icp_common.identity import IDENTITY_HEADER, INTERNAL_TOKEN_HEADER, Identity, IdentitySigner
from icp_identity.rpc import start_grpc
from icp_protos.interloper.identity.v1 import identity_pb2 as pb
from icp_protos.interloper.identity.v1 import identity_pb2_grpc

SECRET = b"identity-tests-secret"
SIGNER = IdentitySigner(SECRET, audience="identity")


@pytest.fixture(scope="session")
async def grpc_target(settings, sessions, internal_secret, signer) -> AsyncIterator[str]:
    assert internal_secret == SECRET
    server, port = await start_grpc(settings, sessions, internal_secret, signer, port=0)
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


@pytest.fixture
async def stub(grpc_target) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture
async def operator_stub(
    settings, sessions, internal_secret, signer
) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    """A server where an operator explicitly enabled the operator-only calls."""
    enabled = settings.model_copy(update={"auth": settings.auth.model_copy(update={"operator_rpcs": True})})
    server, port = await start_grpc(enabled, sessions, internal_secret, signer, port=0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
    await server.stop(grace=None)


def md(identity: Identity | None = None, *, credential: bool = True) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    if credential:
        items.append((INTERNAL_TOKEN_HEADER, internal_token(SECRET)))
    if identity is not None:
        items.append((IDENTITY_HEADER, SIGNER.sign(identity)))
    return tuple(items)


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_every_method_needs_the_internal_credential(stub, world):
    calls = [
        stub.Authenticate(pb.AuthenticateRequest(session_token=world.owner.token), metadata=md(credential=False)),
        stub.CreateSession(pb.CreateSessionRequest(email="x@example.com"), metadata=md(credential=False)),
        stub.GetOrganisation(pb.GetOrganisationRequest(org_id=str(world.org_a)), metadata=md(credential=False)),
        stub.ListMembers(pb.ListMembersRequest(), metadata=md(credential=False)),
    ]
    for call in calls:
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED
    wrong = ((INTERNAL_TOKEN_HEADER, "0" * 64),)
    assert await code_of(stub.CreateSession(pb.CreateSessionRequest(email="x@example.com"), metadata=wrong)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_authenticate(stub, world, count_queries):
    with count_queries() as counter:
        reply = await stub.Authenticate(pb.AuthenticateRequest(session_token=world.viewer.token), metadata=md())
    assert counter.count == 1
    # How long the session has left (the gateway's cache keeps the answer no longer), same query.
    lifetime_ms = 30 * 86_400_000  # INTERLOPER_AUTH_SESSION_EXPIRY_DAYS' default
    assert lifetime_ms - 60_000 < reply.expires_in_ms <= lifetime_ms
    reply.ClearField("expires_in_ms")
    assert reply == pb.AuthenticateResponse(
        state=pb.AUTH_STATE_OK,
        user_id=str(world.viewer.user_id),
        email="viewer@a.example",
        name="",
        avatar_url="",
        session_id=str(world.viewer.session_id),
        org_id=str(world.org_a),
        org_exists=True,
        role="viewer",
        last_organisation_id=str(world.org_a),
    )
    anonymous = await stub.Authenticate(pb.AuthenticateRequest(), metadata=md())
    assert anonymous == pb.AuthenticateResponse(state=pb.AUTH_STATE_ANONYMOUS)
    invalid = await stub.Authenticate(pb.AuthenticateRequest(session_token="nope"), metadata=md())
    assert invalid == pb.AuthenticateResponse(state=pb.AUTH_STATE_INVALID)
    removed = await stub.Authenticate(pb.AuthenticateRequest(session_token=world.removed.token), metadata=md())
    assert (removed.state, removed.org_id, removed.org_exists, removed.role) == (
        pb.AUTH_STATE_OK,
        str(world.org_a),
        True,
        "",
    )


async def test_create_session_is_off_by_default(stub, world, db):
    """The internal credential (even with a valid identity) cannot mint a session for anyone."""
    count = text("SELECT count(*) FROM sessions")
    async with db() as s:
        before = (await s.execute(count)).scalar_one()
    owner = world.owner.identity(world.org_a, "admin")
    for metadata in (md(), md(owner), md(Identity.system())):
        call = stub.CreateSession(pb.CreateSessionRequest(email=world.owner.email), metadata=metadata)
        assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED
    async with db() as s:
        assert (await s.execute(count)).scalar_one() == before


async def test_create_session(operator_stub, client_for):
    stub = operator_stub
    first = await stub.CreateSession(pb.CreateSessionRequest(email="ops@example.com", name="Ops"), metadata=md())
    second = await stub.CreateSession(pb.CreateSessionRequest(email="ops@example.com"), metadata=md())
    assert first.user_id == second.user_id
    assert first.session_id != second.session_id
    assert len(first.session_token) == 64
    reply = await stub.Authenticate(pb.AuthenticateRequest(session_token=second.session_token), metadata=md())
    assert (reply.state, reply.user_id, reply.name, reply.org_id) == (pb.AUTH_STATE_OK, first.user_id, "Ops", "")
    me = (await client_for(first.session_token).get("/api/auth/me")).json()
    assert (me["email"], me["organisation"]) == ("ops@example.com", None)
    assert await code_of(stub.CreateSession(pb.CreateSessionRequest(email=" "), metadata=md())) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_an_assertion_minted_for_another_service_is_refused(stub, world):
    """What the gateway forwards to pipelines (or the agent sends to pipelines) is no good here."""
    owner = world.owner.identity(world.org_a, "admin")
    for_pipelines = IdentitySigner(SECRET).sign(owner, audience="pipelines")
    metadata = (*md(), (IDENTITY_HEADER, for_pipelines))
    assert (
        await code_of(stub.ListMembers(pb.ListMembersRequest(), metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
    )
    assert len((await stub.ListMembers(pb.ListMembersRequest(), metadata=md(owner))).members) > 0


async def test_an_expired_assertion_is_refused(stub, world):
    owner = world.owner.identity(world.org_a, "admin")
    stale = SIGNER.sign(owner, now=time.time() - SIGNER.ttl_seconds - SIGNER.skew_seconds - 1)
    metadata = (*md(), (IDENTITY_HEADER, stale))
    assert (
        await code_of(stub.ListMembers(pb.ListMembersRequest(), metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
    )


async def test_get_organisation(stub, world):
    owner = world.owner.identity(world.org_a, "admin")
    reply = await stub.GetOrganisation(pb.GetOrganisationRequest(org_id=str(world.org_a)), metadata=md(owner))
    assert (reply.organisation.id, reply.organisation.name) == (str(world.org_a), "Org A")
    assert reply.organisation.HasField("created_at")
    for org_id in (str(world.org_b), str(uuid.uuid4()), "not-a-uuid"):
        call = stub.GetOrganisation(pb.GetOrganisationRequest(org_id=org_id), metadata=md(owner))
        assert await code_of(call) == grpc.StatusCode.NOT_FOUND
    system = await stub.GetOrganisation(
        pb.GetOrganisationRequest(org_id=str(world.org_b)), metadata=md(Identity.system())
    )
    assert system.organisation.name == "Org B"
    call = stub.GetOrganisation(pb.GetOrganisationRequest(org_id=str(world.org_a)), metadata=md())
    assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_list_members(stub, world):
    viewer = world.viewer.identity(world.org_a, "viewer")
    reply = await stub.ListMembers(pb.ListMembersRequest(), metadata=md(viewer))
    got = {(m.user_id, m.email, m.role) for m in reply.members}
    assert got == {
        (str(world.owner.user_id), "owner@a.example", "admin"),
        (str(world.admin.user_id), "admin@a.example", "admin"),
        (str(world.editor.user_id), "editor@a.example", "editor"),
        (str(world.viewer.user_id), "viewer@a.example", "viewer"),
    }
    system = await stub.ListMembers(pb.ListMembersRequest(), metadata=md(Identity.system(str(world.org_b))))
    assert [m.email for m in system.members] == ["admin@b.example"]
    cases = [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        (world.no_org.identity(), grpc.StatusCode.FAILED_PRECONDITION),
        (world.removed.identity(world.org_a, None), grpc.StatusCode.PERMISSION_DENIED),
        (Identity(state="ok", user_id=str(world.owner.user_id), org_id=str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND),
    ]
    for identity, code in cases:
        assert await code_of(stub.ListMembers(pb.ListMembersRequest(), metadata=md(identity))) == code
