"""A transaction PostgreSQL aborts for a concurrent one (a deadlock, 40P01; a serialization
failure, 40001) is rolled back: the request answers a retryable JSON 503 (UNAVAILABLE over
gRPC), never a 500 (INTERNAL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common.db import create_engine
from icp_common.grpc import InternalClient, start_server
from icp_common.identity import Identity, IdentitySigner
from icp_common.web import create_service_app

SIGNER = IdentitySigner(b"conflict-tests", audience="test")
EDITOR = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor")
BUSY = {"detail": "Service busy: a concurrent change interfered, retry"}


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=4)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL)"))
        await conn.execute(text("CREATE TABLE writes (note text NOT NULL)"))
        await conn.execute(text("INSERT INTO items VALUES (1, 0), (2, 0)"))
    yield engine
    await engine.dispose()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


async def test_a_deadlocked_request_is_a_json_503_and_nothing_of_it_is_committed(engine: AsyncEngine) -> None:
    app = create_service_app("test", signer=SIGNER)
    both_hold_one = asyncio.Barrier(2)

    @app.post("/move/{first}/{second}")
    async def move(first: int, second: int) -> dict[str, bool]:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO writes VALUES (:n)"), {"n": f"{first}->{second}"})
            await conn.execute(text("UPDATE items SET n = n + 1 WHERE id = :id"), {"id": first})
            await both_hold_one.wait()  # each holds one row and then wants the other's: a deadlock
            await conn.execute(text("UPDATE items SET n = n + 1 WHERE id = :id"), {"id": second})
        return {"ok": True}

    async with client(app) as c:
        answers = await asyncio.gather(c.post("/move/1/2"), c.post("/move/2/1"))
    outcomes = sorted((r.status_code, r.json(), r.headers.get("retry-after")) for r in answers)
    assert outcomes == [(200, {"ok": True}, None), (503, BUSY, "1")]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM writes"))).scalar_one() == 1
        assert sorted((await conn.execute(text("SELECT n FROM items"))).scalars()) == [1, 1]


async def test_a_serialization_failure_is_a_json_503(engine: AsyncEngine) -> None:
    app = create_service_app("test", signer=SIGNER)

    @app.post("/bump")
    async def bump() -> None:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SELECT n FROM items WHERE id = 1"))  # the snapshot
                await conn.execute(text("INSERT INTO writes VALUES ('bump')"))
                async with engine.begin() as other:  # a concurrent change commits meanwhile
                    await other.execute(text("UPDATE items SET n = 10 WHERE id = 1"))
                await conn.execute(text("UPDATE items SET n = n + 1 WHERE id = 1"))

    async with client(app) as c:
        r = await c.post("/bump")
    assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, BUSY, "1")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM writes"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT n FROM items WHERE id = 1"))).scalar_one() == 10


async def test_a_serialization_failure_is_unavailable_over_grpc(engine: AsyncEngine) -> None:
    async def bump(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SELECT n FROM items WHERE id = 1"))  # the snapshot
                async with engine.begin() as other:
                    await other.execute(text("UPDATE items SET n = 10 WHERE id = 1"))
                await conn.execute(text("UPDATE items SET n = n + 1 WHERE id = 1"))
        return b""

    def register(server: grpc.aio.Server) -> None:
        handlers = {"Bump": grpc.unary_unary_rpc_method_handler(bump)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Db", handlers),))

    server, _, port = await start_server(0, register, secret=b"grpc-conflict", signer=SIGNER)
    client_ = InternalClient(f"127.0.0.1:{port}", b"grpc-conflict", SIGNER)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as aborted:
            await client_.channel.unary_unary("/test.Db/Bump")(b"", metadata=client_.metadata(EDITOR), timeout=10)
        assert (aborted.value.code(), aborted.value.details()) == (grpc.StatusCode.UNAVAILABLE, BUSY["detail"])
    finally:
        await client_.close()
        await server.stop(grace=None)
