"""A database that cannot be reached (refused, or a connection it closed, as when PostgreSQL
restarts) is a retryable JSON 503 over HTTP and UNAVAILABLE over gRPC, never a 500/INTERNAL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from icp_common.db import create_engine
from icp_common.grpc import InternalClient, start_server
from icp_common.identity import Identity, IdentitySigner
from icp_common.web import create_service_app
from icp_stack.ports import free_port

SIGNER = IdentitySigner(b"outage-tests", audience="test")
EDITOR = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor")
UNAVAILABLE = (503, {"detail": "Service unavailable: database"})


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


async def terminate_backends(database_url: str) -> None:
    """What a PostgreSQL restart does to the pooled connections: the server closes them."""
    admin = create_engine(database_url, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await admin.dispose()


@pytest.fixture
async def outage_app(fresh_database: str) -> AsyncIterator[FastAPI]:
    engine = create_engine(fresh_database, pool_size=1)
    # Nothing listens there: every connection is refused, as while PostgreSQL restarts.
    nowhere = create_engine(make_url(fresh_database).set(port=free_port()).render_as_string(hide_password=False))
    app = create_service_app("test", signer=SIGNER)

    @app.get("/value")
    async def value() -> dict[str, int]:
        async with engine.connect() as conn:
            return {"value": (await conn.execute(text("SELECT 1"))).scalar_one()}

    @app.get("/refused")
    async def refused() -> None:
        async with nowhere.connect() as conn:
            await conn.execute(text("SELECT 1"))

    app.state.database_url = fresh_database
    yield app
    await engine.dispose()
    await nowhere.dispose()


async def test_a_database_that_is_down_or_dropped_the_connection_is_a_json_503(outage_app: FastAPI) -> None:
    async with client(outage_app) as c:
        assert (await c.get("/value")).json() == {"value": 1}
        r = await c.get("/refused")
        assert (r.status_code, r.json()) == UNAVAILABLE and r.headers["retry-after"] == "1"
        await terminate_backends(outage_app.state.database_url)
        r = await c.get("/value")  # the pooled connection the server closed
        assert (r.status_code, r.json()) == UNAVAILABLE and r.headers["retry-after"] == "1"
        assert (await c.get("/value")).json() == {"value": 1}  # the pool reconnects


async def test_a_database_that_is_down_is_unavailable_over_grpc(fresh_database: str) -> None:
    engine = create_engine(fresh_database, pool_size=1)

    async def read(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SELECT 1"))).scalar_one()).encode()

    def register(server: grpc.aio.Server) -> None:
        handlers = {"Read": grpc.unary_unary_rpc_method_handler(read)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Db", handlers),))

    server, _, port = await start_server(0, register, secret=b"grpc-outage", signer=SIGNER)
    client_ = InternalClient(f"127.0.0.1:{port}", b"grpc-outage", SIGNER)
    method = client_.channel.unary_unary("/test.Db/Read")
    try:
        assert await method(b"", metadata=client_.metadata(EDITOR), timeout=10) == b"1"
        await terminate_backends(fresh_database)
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await method(b"", metadata=client_.metadata(EDITOR), timeout=10)
        assert (lost.value.code(), lost.value.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "Service unavailable: database",
        )
    finally:
        await client_.close()
        await server.stop(grace=None)
        await engine.dispose()
