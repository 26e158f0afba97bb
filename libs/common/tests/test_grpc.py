"""The gRPC plumbing: internal credential, identity propagation, error mapping, health."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from icp_common.context import current_request_id
from icp_common.errors import Forbidden, NotFound
from icp_common.grpc import InternalClient, current_identity, start_server
from icp_common.identity import Identity, IdentitySigner

SECRET = b"grpc-tests"
SIGNER = IdentitySigner(SECRET)
METHOD = "/test.Echo/Call"


async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    command = request.decode()
    if command == "missing":
        raise NotFound("Job not found")
    if command == "forbidden":
        raise Forbidden("Requires editor role or higher")
    if command == "crash":
        raise RuntimeError("internals")
    identity = current_identity()
    return json.dumps({"user": identity.user_id, "state": identity.state, "request_id": current_request_id()}).encode()


def register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(call)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Call": handler}),))


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server, _, port = await start_server(0, register, secret=SECRET, signer=SIGNER)
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


async def invoke(client: InternalClient, body: str, metadata: tuple[tuple[str, str], ...]) -> dict[str, str]:
    method = client.channel.unary_unary(METHOD)
    return json.loads(await method(body.encode(), metadata=metadata, timeout=client.timeout))  # type: ignore[no-any-return]


async def test_identity_and_request_id_cross_the_call(target: str) -> None:
    client = InternalClient(target, SECRET, SIGNER)
    user = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="viewer")
    metadata = (*[m for m in client.metadata(user) if m[0] != "x-request-id"], ("x-request-id", "req-42"))
    assert await invoke(client, "who", metadata) == {"user": "u1", "state": "ok", "request_id": "req-42"}
    assert (await invoke(client, "who", client.metadata()))["state"] == "anonymous"
    await client.close()


async def test_internal_credential_is_required(target: str) -> None:
    outsider = InternalClient(target, b"wrong-secret", IdentitySigner(b"wrong-secret"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(outsider, "who", outsider.metadata())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await outsider.close()


@pytest.mark.parametrize(
    ("command", "code", "detail"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, "Job not found"),
        ("forbidden", grpc.StatusCode.PERMISSION_DENIED, "Requires editor role or higher"),
        ("crash", grpc.StatusCode.INTERNAL, "Internal error"),
    ],
)
async def test_errors_map_to_status_codes(target: str, command: str, code: grpc.StatusCode, detail: str) -> None:
    client = InternalClient(target, SECRET, SIGNER)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(client, command, client.metadata())
    assert (caught.value.code(), caught.value.details()) == (code, detail)
    await client.close()


async def test_forged_identity_is_unauthenticated(target: str) -> None:
    client = InternalClient(target, SECRET, SIGNER)
    forged = IdentitySigner(b"not-the-secret").sign(Identity(state="ok", user_id="mallory"))
    metadata = (*[m for m in client.metadata() if m[0] != "x-interloper-identity"], ("x-interloper-identity", forged))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(client, "who", metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await client.close()


async def test_health_is_served_without_credentials(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
