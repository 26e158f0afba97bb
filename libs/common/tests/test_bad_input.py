"""Bad input is a 4xx in every service (the app factory's shared handling), never a 500:
non-finite numbers in JSON bodies and values PostgreSQL refuses (over gRPC too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from icp_common.db import create_engine
from icp_common.grpc import InternalClient, start_server
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.strict_json import MESSAGE
from icp_common.web import EditorDep, create_service_app

SIGNER = IdentitySigner(b"bad-input-tests", audience="test")
EDITOR = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor")


class Measure(BaseModel):
    name: str
    value: float = 0.0
    extra: dict[str, Any] = {}


def client(app: FastAPI, identity: Identity | None = EDITOR) -> httpx.AsyncClient:
    headers = {IDENTITY_HEADER: SIGNER.sign(identity)} if identity else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://svc", headers=headers)


@pytest.fixture
def echo_app() -> tuple[FastAPI, list[Measure]]:
    app = create_service_app("test", signer=SIGNER)
    received: list[Measure] = []

    @app.post("/measures")
    async def create(body: Measure, identity: EditorDep) -> Measure:
        received.append(body)
        return body

    @app.post("/open")
    async def open_body(body: Measure) -> Measure:
        received.append(body)
        return body

    return app, received


@pytest.mark.parametrize(
    ("body", "position"),
    [
        ('{"name": NaN}', 9),
        ('{"name": "x", "value": Infinity}', 23),
        ('{"name": "x", "value": -Infinity}', 23),
        ('{"name": "x", "value": 1e400}', 23),
        ('{"name": "x", "value": -1.5E+999}', 23),
        ('{"name": "NaN", "extra": {"list": [1, 2, NaN]}}', 41),
        ('{"name": "has \\" NaN inside", "value": NaN}', 39),
    ],
)
@pytest.mark.parametrize("path", ["/measures", "/open"])
async def test_non_finite_numbers_are_malformed_json(
    echo_app: tuple[FastAPI, list[Measure]], body: str, position: int, path: str
) -> None:
    app, received = echo_app
    for identity in (None, EDITOR):  # like malformed JSON: 422 first, even unauthenticated
        async with client(app, identity) as c:
            r = await c.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json() == {
            "detail": [
                {
                    "type": "json_invalid",
                    "loc": ["body", position],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": MESSAGE},
                }
            ]
        }
    assert received == []


async def test_finite_numbers_and_lookalike_strings_pass(echo_app: tuple[FastAPI, list[Measure]]) -> None:
    app, received = echo_app
    body = '{"name": "NaN Infinity 1e400", "value": 1.5e300, "extra": {"n": -2E-5}}'
    async with client(app) as c:
        r = await c.post("/measures", content=body.encode(), headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (
            200,
            {"name": "NaN Infinity 1e400", "value": 1.5e300, "extra": {"n": -2e-5}},
        )
        # other malformed JSON keeps FastAPI's own answer
        r = await c.post("/measures", content=b'{"name": }', headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["ctx"] == {"error": "Expecting value"}
    assert len(received) == 1


@pytest.fixture
async def db_app(fresh_database: str) -> AsyncIterator[FastAPI]:
    engine = create_engine(fresh_database, pool_size=1)
    app = create_service_app("test", signer=SIGNER)

    @app.post("/text")
    async def store_text(body: Measure) -> dict[str, str]:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT CAST(:v AS text)"), {"v": body.name})).scalar_one()
        return {"name": value}

    @app.post("/small")
    async def store_small(body: Measure) -> dict[str, int]:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT CAST(:v AS smallint)"), {"v": int(body.value)})).scalar_one()
        return {"value": value}

    @app.post("/broken")
    async def broken() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))

    yield app
    await engine.dispose()


async def test_values_the_database_refuses_are_422(db_app: FastAPI) -> None:
    async with client(db_app) as c:
        assert (await c.post("/text", json={"name": "ok"})).json() == {"name": "ok"}
        for path, body in [("/text", {"name": "a\u0000b"}), ("/small", {"name": "x", "value": 10**6})]:
            r = await c.post(path, json=body)
            assert (r.status_code, r.json()) == (422, {"detail": "Invalid value: not accepted by the database"})
        # any other database error stays an internal one
        r = await c.post("/broken")
        assert (r.status_code, r.text) == (500, "Internal Server Error")


async def test_values_the_database_refuses_are_invalid_argument_over_grpc(fresh_database: str) -> None:
    engine = create_engine(fresh_database, pool_size=1)

    async def store(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT CAST(:v AS text)"), {"v": request.decode()})).scalar_one()
        return str(value).encode()

    def register(server: grpc.aio.Server) -> None:
        handlers = {"Store": grpc.unary_unary_rpc_method_handler(store)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Db", handlers),))

    server, _, port = await start_server(0, register, secret=b"grpc-bad-input", signer=SIGNER)
    client = InternalClient(f"127.0.0.1:{port}", b"grpc-bad-input", SIGNER)
    method = client.channel.unary_unary("/test.Db/Store")
    try:
        assert await method(b"ok", metadata=client.metadata(EDITOR), timeout=10) == b"ok"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await method("a\u0000b".encode(), metadata=client.metadata(EDITOR), timeout=10)
        assert (refused.value.code(), refused.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Invalid value: not accepted by the database",
        )
    finally:
        await client.close()
        await server.stop(grace=None)
        await engine.dispose()
