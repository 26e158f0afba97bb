"""The gRPC plumbing: internal credential, identity propagation, error mapping, health."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from icp_common.context import current_request_id
from icp_common.db import create_engine
from icp_common.errors import Forbidden, NotFound
from icp_common.grpc import InternalClient, current_identity, start_server
from icp_common.identity import Identity, IdentitySigner

SECRET = b"grpc-tests"
SIGNER = IdentitySigner(SECRET, audience="test")
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


async def listen(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """unary-stream: echoes the caller twice."""
    for _ in range(2):
        yield await call(request, context)


async def upload(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    """stream-unary: would serve anyone if the interceptor passed it through."""
    return b"served"


async def chat(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """stream-stream: would serve anyone if the interceptor passed it through."""
    yield b"served"


def register(server: grpc.aio.Server) -> None:
    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(call),
        "Listen": grpc.unary_stream_rpc_method_handler(listen),
        "Upload": grpc.stream_unary_rpc_method_handler(upload),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))


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
    outsider = InternalClient(target, b"wrong-secret", IdentitySigner(b"wrong-secret", audience="test"))
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
    forged = IdentitySigner(b"not-the-secret", audience="test").sign(Identity(state="ok", user_id="mallory"))
    metadata = (*[m for m in client.metadata() if m[0] != "x-interloper-identity"], ("x-interloper-identity", forged))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(client, "who", metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await client.close()


async def test_health_is_served_without_credentials(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_server_streams_need_the_credential_and_carry_the_identity(target: str) -> None:
    client = InternalClient(target, SECRET, SIGNER, audience="test")
    listen = client.channel.unary_stream("/test.Echo/Listen")
    user = Identity(state="ok", user_id="u1")
    replies = [json.loads(r) async for r in listen(b"who", metadata=client.metadata(user), timeout=5)]
    assert [r["user"] for r in replies] == ["u1", "u1"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [r async for r in listen(b"who", timeout=5)]  # no internal credential
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [r async for r in listen(b"missing", metadata=client.metadata(), timeout=5)]
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.NOT_FOUND, "Job not found")
    await client.close()


async def test_client_streaming_shapes_are_refused(target: str) -> None:
    """Not wrapped by the interceptor, so never served: not even with the credential."""
    client = InternalClient(target, SECRET, SIGNER, audience="test")

    async def requests() -> AsyncIterator[bytes]:
        yield b"x"

    for shape in ("Upload", "Chat"):
        for metadata in ((), client.metadata()):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                if shape == "Upload":
                    await client.channel.stream_unary(f"/test.Echo/{shape}")(requests(), metadata=metadata, timeout=5)
                else:
                    _ = [
                        r
                        async for r in client.channel.stream_stream(f"/test.Echo/{shape}")(
                            requests(), metadata=metadata, timeout=5
                        )
                    ]
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, shape
    await client.close()


async def test_identity_for_another_service_is_unauthenticated(target: str) -> None:
    other = InternalClient(target, SECRET, SIGNER, audience="pipelines")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(other, "who", other.metadata(Identity(state="ok", user_id="u1")))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await other.close()


async def test_expired_identity_is_unauthenticated(target: str) -> None:
    client = InternalClient(target, SECRET, SIGNER, audience="test")
    stale = SIGNER.sign(Identity(state="ok", user_id="u1"), now=time.time() - SIGNER.ttl_seconds - 60)
    metadata = (*[m for m in client.metadata() if m[0] != "x-interloper-identity"], ("x-interloper-identity", stale))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoke(client, "who", metadata)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "Expired identity assertion",
    )
    await client.close()


async def test_a_call_past_its_deadline_keeps_its_database_connection(fresh_database: str) -> None:
    """A client's deadline cancels the server's handler; stopped mid-query, SQLAlchemy discarded
    the pooled connection, and the next call opened a new PostgreSQL backend (cold caches: the
    fresh backends `make soak` saw growing). The handler now finishes, and the backend serves on."""
    engine = create_engine(fresh_database, pool_size=1, fixed=True)
    finished = asyncio.Event()

    async def hold(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.5)"))
        finished.set()
        return b"done"

    def register_hold(server: grpc.aio.Server) -> None:
        handlers = {"Hold": grpc.unary_unary_rpc_method_handler(hold)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))

    server, _, port = await start_server(0, register_hold, secret=SECRET, signer=SIGNER)
    client = InternalClient(f"127.0.0.1:{port}", SECRET, SIGNER)
    try:
        async with engine.connect() as conn:
            backend = await conn.scalar(text("SELECT pg_backend_pid()"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.channel.unary_unary("/test.Echo/Hold")(b"", metadata=client.metadata(), timeout=0.1)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(finished.wait(), 10)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) == backend
    finally:
        await client.close()
        await server.stop(grace=None)
        await engine.dispose()
