"""Pipelines service test fixtures: a real PostgreSQL database (migrated once per session), a real
NATS with JetStream, the app over httpx ASGITransport, and one client per kind of caller.

Each client forwards a signed identity header exactly as the gateway does (the identity service
is not needed: the assertion is what the pipelines service trusts). Every test starts from empty
tables (TRUNCATE) and fresh organisation ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from icp_common.db import create_engine, create_sessionmaker, unit_of_work
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.outbox import OutboxRelay
from icp_common.resources import ServiceResources
from icp_common.settings import NatsSettings, PostgresSettings
from icp_pipelines.app import STREAMS, create_app
from icp_pipelines.db import MIGRATIONS_DIR, SERVICE, outbox_table
from icp_pipelines.demo import CATALOG_PATHS
from icp_pipelines.settings import Settings
from icp_testing.fixtures import count_statements, migrated_database
from icp_testing.fixtures import nats_client as shared_nats_client

SECRET = "pipelines-tests-secret"
SIGNER = IdentitySigner(SECRET.encode(), audience="pipelines")
BASE_URL = "http://testserver"
TABLES = (
    "events, runs, backfills, job_assets, job_sources, jobs, asset_dependencies, asset_destinations, "
    "asset_resources, assets, source_destinations, source_resources, sources, destination_resources, "
    "destinations, resources, outbox, idempotency_keys"
)


@pytest.fixture(scope="session")
async def database_url(postgres_server: Any) -> str:
    return await migrated_database(postgres_server, "pipelines_test", MIGRATIONS_DIR)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
def settings(postgres_server: Any, nats_server: Any, database_url: str, tmp_path_factory: Any) -> Settings:
    return Settings(
        internal_secret=SECRET,
        catalog=[*CATALOG_PATHS, "nope_module.Missing"],
        data_dir=str(tmp_path_factory.mktemp("data")),
        postgres=PostgresSettings(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password=postgres_server.password,
            database=database_url.rsplit("/", 1)[1],
        ),
        nats=NatsSettings(url=nats_server.url),
    )


@pytest.fixture(scope="session")
def resources(settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> ServiceResources:
    held = ServiceResources(SERVICE, settings, migrations_dir=MIGRATIONS_DIR, use_nats=False)
    held.engine, held.sessions = engine, sessions
    return held


@pytest.fixture(scope="session")
def app(settings: Settings, resources: ServiceResources) -> FastAPI:
    return create_app(settings, resources=resources)


@pytest.fixture(scope="session")
async def nats_client(nats_server: Any) -> AsyncIterator[NATS]:
    async with shared_nats_client(nats_server, "pipelines-tests", STREAMS) as nc:
        yield nc


@pytest.fixture(autouse=True)
async def clean_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], Any]:
    """`async with db() as s:` -- one committed transaction, for arranging and asserting."""
    return lambda: unit_of_work(sessions)


@pytest.fixture
def count_queries(engine: AsyncEngine) -> Callable[[], Any]:
    """`with count_queries() as counter:` counts SQL statements sent through the engine."""
    return lambda: count_statements(engine)


# ------------------------------------------------------------------------------------- callers


class SignedIdentityTransport(httpx.AsyncBaseTransport):
    """Does what the gateway does before proxying: forwards a freshly signed identity."""

    def __init__(self, app: FastAPI, identity: Identity | None) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.identity = identity

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.identity is not None:
            request.headers[IDENTITY_HEADER] = SIGNER.sign(self.identity)
        return await self.inner.handle_async_request(request)


def member(org_id: uuid.UUID | None, role: str | None, *, exists: bool = True) -> Identity:
    return Identity(
        state="ok",
        user_id=str(uuid.uuid4()),
        email=f"{role or 'someone'}@example.com",
        session_id=str(uuid.uuid4()),
        org_id=str(org_id) if org_id else None,
        org_exists=exists and org_id is not None,
        role=role,
    )


@dataclass
class World:
    org_a: uuid.UUID
    org_b: uuid.UUID
    admin: Identity
    editor: Identity
    viewer: Identity
    removed: Identity
    no_org: Identity
    org_gone: Identity
    other: Identity


@pytest.fixture
def world() -> World:
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    return World(
        org_a=org_a,
        org_b=org_b,
        admin=member(org_a, "admin"),
        editor=member(org_a, "editor"),
        viewer=member(org_a, "viewer"),
        removed=member(org_a, None),
        no_org=member(None, None),
        org_gone=member(uuid.uuid4(), None, exists=False),
        other=member(org_b, "admin"),
    )


@dataclass
class Clients:
    admin: httpx.AsyncClient
    editor: httpx.AsyncClient
    viewer: httpx.AsyncClient
    removed: httpx.AsyncClient
    no_org: httpx.AsyncClient
    org_gone: httpx.AsyncClient
    other_org: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    invalid: httpx.AsyncClient

    def denied(self) -> list[tuple[str, httpx.AsyncClient, int, str]]:
        """Callers refused before any role check: (name, client, status, detail)."""
        return [
            ("anonymous", self.anonymous, 401, "Not authenticated"),
            ("invalid", self.invalid, 401, "Invalid or expired session"),
            ("no_org", self.no_org, 400, "No organisation selected"),
            ("org_gone", self.org_gone, 404, "Organisation not found"),
            ("removed", self.removed, 403, "Not a member of this organisation"),
        ]


@pytest.fixture
async def clients(app: FastAPI, world: World) -> AsyncIterator[Clients]:
    def client(identity: Identity | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=SignedIdentityTransport(app, identity), base_url=BASE_URL)

    built = Clients(
        admin=client(world.admin),
        editor=client(world.editor),
        viewer=client(world.viewer),
        removed=client(world.removed),
        no_org=client(world.no_org),
        org_gone=client(world.org_gone),
        other_org=client(world.other),
        anonymous=client(None),
        invalid=client(Identity(state="invalid")),
    )
    yield built
    for c in vars(built).values():
        await c.aclose()


# ------------------------------------------------------------------------------------ helpers


async def outbox_rows(db: Callable[[], Any], prefix: str = "") -> list[dict[str, Any]]:
    async with db() as s:
        rows = (await s.execute(text("SELECT subject, payload FROM outbox ORDER BY id"))).all()
    return [{"subject": r.subject, "payload": json.loads(r.payload)} for r in rows if r.subject.startswith(prefix)]


@pytest.fixture
def outbox(db: Callable[[], Any]) -> Callable[..., Any]:
    return lambda prefix="": outbox_rows(db, prefix)


@pytest.fixture
def relay(engine: AsyncEngine, nats_client: NATS) -> OutboxRelay:
    """Publishes the outbox to JetStream when the test calls `await relay.publish_batch()`."""
    return OutboxRelay(engine, nats_client, outbox_table, SERVICE)


async def table_count(db: Callable[[], Any], table: str) -> int:
    async with db() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
