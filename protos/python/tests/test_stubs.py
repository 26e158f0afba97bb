"""The generated stubs import, round-trip messages, and serve/call over a real grpc.aio channel."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import cast

import grpc
import grpc.aio
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from icp_protos.interloper.identity.v1 import identity_pb2, identity_pb2_grpc
from icp_protos.interloper.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc

ORG_ID = "8b0e1f3c-2d4a-4c6b-9e8f-0a1b2c3d4e5f"
TOKEN = "good-token"


def test_service_and_package_names_are_the_canonical_ones() -> None:
    # The python module lives under icp_protos, but the protobuf package (and so the gRPC method
    # paths on the wire) is interloper.<service>.v1.
    identity = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]
    pipelines = pipelines_pb2.DESCRIPTOR.services_by_name["PipelinesService"]
    assert identity.full_name == "interloper.identity.v1.IdentityService"
    assert pipelines.full_name == "interloper.pipelines.v1.PipelinesService"
    assert [m.name for m in identity.methods] == [
        "Authenticate",
        "CreateSession",
        "GetOrganisation",
        "ListMembers",
        "IssueInvitationLink",
    ]
    assert {m.name for m in pipelines.methods} >= {
        "ListCatalog",
        "ListSources",
        "ListAssets",
        "GetLineage",
        "ListJobs",
        "TriggerRun",
        "TriggerBackfill",
        "SetJobEnabled",
        "SetAssetMaterializable",
        "ListRuns",
        "GetRun",
    }
    assert hasattr(identity_pb2_grpc, "IdentityServiceStub")
    assert hasattr(pipelines_pb2_grpc, "add_PipelinesServiceServicer_to_server")


def test_authenticate_response_round_trip() -> None:
    msg = identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK,
        user_id="u1",
        email="ada@example.com",
        name="Ada",
        session_id="s1",
        org_id=ORG_ID,
        org_exists=True,
        role="editor",
    )
    decoded = identity_pb2.AuthenticateResponse.FromString(msg.SerializeToString())
    assert decoded == msg
    assert decoded.state == identity_pb2.AUTH_STATE_OK
    assert identity_pb2.AuthState.Name(decoded.state) == "AUTH_STATE_OK"
    # Unset strings read as "" (documented as "none"), e.g. no avatar, no last organisation.
    assert decoded.avatar_url == ""
    assert decoded.last_organisation_id == ""


def test_organisation_timestamp_round_trip() -> None:
    created = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(created)
    resp = identity_pb2.GetOrganisationResponse(
        organisation=identity_pb2.Organisation(id=ORG_ID, name="Acme", created_at=ts)
    )
    decoded = identity_pb2.GetOrganisationResponse.FromString(resp.SerializeToString())
    assert decoded.organisation.created_at.ToDatetime(tzinfo=dt.UTC) == created
    # A message field has presence: an unset timestamp means "unknown".
    assert not identity_pb2.Organisation(id=ORG_ID).HasField("created_at")


def test_pipelines_struct_and_optional_fields_round_trip() -> None:
    config = struct_pb2.Struct()
    config.update({"dataset": "demo", "nested": {"n": 1.5, "flags": [True, None]}})
    source = pipelines_pb2.Source(
        id="s1", key="demo_source", name="Demo", config=config, resources={"connection": "r1"}
    )
    decoded = pipelines_pb2.Source.FromString(source.SerializeToString())
    assert decoded.config["dataset"] == "demo"
    nested = decoded.config["nested"]
    assert isinstance(nested, struct_pb2.Struct)
    assert nested["n"] == 1.5
    assert dict(decoded.resources) == {"connection": "r1"}
    assert not pipelines_pb2.Source(id="s2").HasField("config")

    run = pipelines_pb2.TriggerRunRequest(job_id="j1")
    assert not run.HasField("partition_date")
    run.partition_date = "2024-02-01"
    assert pipelines_pb2.TriggerRunRequest.FromString(run.SerializeToString()).HasField("partition_date")

    backfill = pipelines_pb2.TriggerBackfillRequest(job_id="j1", start_date="2024-01-01", end_date="2024-01-31")
    assert not backfill.HasField("concurrency")

    listed = pipelines_pb2.ListRunsRequest(status=pipelines_pb2.RUN_STATUS_FAILED, limit=20)
    assert pipelines_pb2.ListRunsRequest.FromString(listed.SerializeToString()).status == (
        pipelines_pb2.RUN_STATUS_FAILED
    )


class _Identity(identity_pb2_grpc.IdentityServiceServicer):
    """A tiny in-memory IdentityService: one valid token, one organisation, one member."""

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.AuthenticateResponse:
        if not request.session_token:
            return identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_ANONYMOUS)
        if request.session_token != TOKEN:
            return identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_INVALID)
        return identity_pb2.AuthenticateResponse(
            state=identity_pb2.AUTH_STATE_OK,
            user_id="u1",
            email="ada@example.com",
            name="Ada",
            session_id="s1",
            org_id=ORG_ID,
            org_exists=True,
            role="admin",
        )

    async def CreateSession(
        self, request: identity_pb2.CreateSessionRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateSessionResponse:
        return identity_pb2.CreateSessionResponse(session_token=TOKEN, user_id="u1", session_id="s1")

    async def GetOrganisation(
        self, request: identity_pb2.GetOrganisationRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetOrganisationResponse:
        if request.org_id != ORG_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Organisation {request.org_id} not found")
        return identity_pb2.GetOrganisationResponse(organisation=identity_pb2.Organisation(id=ORG_ID, name="Acme"))

    async def ListMembers(
        self, request: identity_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListMembersResponse:
        # The organisation comes from the caller identity in the metadata, not from the request.
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("x-test-org-id") != ORG_ID:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "Not a member of this organisation")
        return identity_pb2.ListMembersResponse(
            members=[identity_pb2.Member(user_id="u1", email="ada@example.com", name="Ada", role="admin")]
        )


@pytest.fixture
async def identity_stub() -> AsyncIterator[identity_pb2_grpc.IdentityServiceAsyncStub]:
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(_Identity(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port > 0
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            # grpc ships no type information here (mypy sees it as Any), so mypy-protobuf's overload
            # cannot pick the asyncio stub type by itself: name it. IdentityServiceAsyncStub exists
            # only in the .pyi, hence the string.
            yield cast("identity_pb2_grpc.IdentityServiceAsyncStub", identity_pb2_grpc.IdentityServiceStub(channel))
    finally:
        await server.stop(grace=None)


async def test_authenticate_over_a_real_channel(
    identity_stub: identity_pb2_grpc.IdentityServiceAsyncStub,
) -> None:
    ok = await identity_stub.Authenticate(identity_pb2.AuthenticateRequest(session_token=TOKEN), timeout=5)
    assert ok.state == identity_pb2.AUTH_STATE_OK
    assert (ok.user_id, ok.org_id, ok.role, ok.org_exists) == ("u1", ORG_ID, "admin", True)

    anonymous = await identity_stub.Authenticate(identity_pb2.AuthenticateRequest(), timeout=5)
    assert anonymous.state == identity_pb2.AUTH_STATE_ANONYMOUS
    assert anonymous.user_id == ""

    invalid = await identity_stub.Authenticate(identity_pb2.AuthenticateRequest(session_token="nope"), timeout=5)
    assert invalid.state == identity_pb2.AUTH_STATE_INVALID


async def test_metadata_scoped_call_and_status_codes(
    identity_stub: identity_pb2_grpc.IdentityServiceAsyncStub,
) -> None:
    members = await identity_stub.ListMembers(
        identity_pb2.ListMembersRequest(), metadata=(("x-test-org-id", ORG_ID),), timeout=5
    )
    assert [m.email for m in members.members] == ["ada@example.com"]

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await identity_stub.ListMembers(identity_pb2.ListMembersRequest(), timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await identity_stub.GetOrganisation(identity_pb2.GetOrganisationRequest(org_id="other"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "Organisation other not found"


async def test_unimplemented_pipelines_method_is_unimplemented() -> None:
    # A servicer that does not override a method answers UNIMPLEMENTED (generated base class).
    server = grpc.aio.server()
    pipelines_pb2_grpc.add_PipelinesServiceServicer_to_server(
        pipelines_pb2_grpc.PipelinesServiceServicer(),  # type: ignore[abstract]
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pipelines_pb2_grpc.PipelinesServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetRun(pipelines_pb2.GetRunRequest(run_id="r1"), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(grace=None)
