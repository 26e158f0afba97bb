"""Identity service test fixtures: a real PostgreSQL database (migrated once per session), a
real NATS, the app over httpx ASGITransport, and one client per kind of caller.

Each client goes through `GatewayTransport`, which does what the gateway does: it reads the
`session_token` cookie, resolves it with the real Authenticate logic and forwards the signed
identity header. Every test starts from empty tables (TRUNCATE)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from icp_common.caller import Caller, caller_of
from icp_common.db import create_engine, create_sessionmaker, unit_of_work
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.settings import NatsSettings, PostgresSettings
from icp_identity.app import STREAMS, create_app
from icp_identity.auth import service as auth_service
from icp_identity.db import MIGRATIONS_DIR, SERVICE
from icp_identity.members import repository as members_repository
from icp_identity.members import service as members_service
from icp_identity.organisations import service as organisations_service
from icp_identity.sessions import service as sessions_service
from icp_identity.settings import AuthSettings, Settings
from icp_identity.tokens import service as tokens_service
from icp_testing.fake_google import FakeGoogle
from icp_testing.fixtures import count_statements, migrated_database
from icp_testing.fixtures import nats_client as shared_nats_client

SECRET = "identity-tests-secret"
SIGNER = IdentitySigner(SECRET.encode(), audience="identity")
BASE_URL = "http://testserver"
TABLES = "invitations, sessions, memberships, profiles, organisations, outbox, idempotency_keys, audit_entries"


# ------------------------------------------------------------------------------ infrastructure


@pytest.fixture(scope="session")
def signer() -> IdentitySigner:
    """Signs identity assertions as the gateway does (same internal secret as the app)."""
    return SIGNER


@pytest.fixture(scope="session")
def internal_secret() -> bytes:
    return SECRET.encode()


@pytest.fixture(scope="session")
async def database_url(postgres_server: Any) -> str:
    return await migrated_database(postgres_server, "identity_test", MIGRATIONS_DIR)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def fake_google() -> AsyncIterator[FakeGoogle]:
    async with FakeGoogle().serve() as fake:
        yield fake


@pytest.fixture(scope="session")
def settings(postgres_server: Any, nats_server: Any, fake_google: FakeGoogle, database_url: str) -> Settings:
    return Settings(
        internal_secret=SECRET,
        public_url=BASE_URL,
        postgres=PostgresSettings(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password=postgres_server.password,
            database=database_url.rsplit("/", 1)[1],
        ),
        nats=NatsSettings(url=nats_server.url),
        auth=AuthSettings(
            google_client_id=fake_google.client_id,
            google_client_secret=fake_google.client_secret,
            google_redirect_uri=f"{BASE_URL}/api/auth/google/callback",
            google_auth_url=f"{fake_google.url}/auth",
            google_token_url=f"{fake_google.url}/token",
            google_userinfo_url=f"{fake_google.url}/userinfo",
            cookie_secure=False,
            dev_login=True,
        ),
    )


@pytest.fixture(scope="session")
def resources(settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> ServiceResources:
    held = ServiceResources(SERVICE, settings, migrations_dir=MIGRATIONS_DIR, use_nats=False)
    held.engine, held.sessions = engine, sessions
    return held


@pytest.fixture(scope="session")
async def nats_client(nats_server: Any) -> AsyncIterator[NATS]:
    async with shared_nats_client(nats_server, "identity-tests", STREAMS) as nc:
        yield nc


@pytest.fixture(autouse=True)
async def clean_tables(engine: AsyncEngine, fake_google: FakeGoogle) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    fake_google.reset()


@pytest.fixture
def db(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], Any]:
    """`async with db() as s:` -- one committed transaction, for arranging and asserting."""
    return lambda: unit_of_work(sessions)


@pytest.fixture
def count_queries(engine: AsyncEngine) -> Callable[[], Any]:
    """`with count_queries() as counter:` counts SQL statements sent through the engine."""
    return lambda: count_statements(engine)


# ------------------------------------------------------------------------------------- the app


@pytest.fixture(scope="session")
def make_app(settings: Settings, resources: ServiceResources) -> Callable[..., FastAPI]:
    """An app with some auth settings changed (dev_login=False, google_client_id="", ...)."""

    def build(**auth: Any) -> FastAPI:
        merged = AuthSettings.model_validate({**settings.auth.model_dump(), **auth})
        changed = settings.model_copy(update={"auth": merged})
        return create_app(changed, resources=resources)

    return build


@pytest.fixture(scope="session")
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


class GatewayTransport(httpx.AsyncBaseTransport):
    """Does what the gateway does before proxying: cookie -> Authenticate -> signed header."""

    def __init__(self, app: FastAPI, sessions: async_sessionmaker[AsyncSession], signer: IdentitySigner) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.sessions = sessions
        self.signer = signer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = None
        if "cookie" in request.headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(request.headers["cookie"])
            morsel = jar.get("session_token")
            token = morsel.value if morsel is not None else None
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer.startswith("ilp_"):  # an API token beats the cookie, as at the gateway
            async with unit_of_work(self.sessions) as s:
                identity = (await tokens_service.authenticate_until(s, bearer))[0]
        elif token is None:
            identity = Identity.anonymous()
        elif not token:
            identity = Identity(state="invalid")
        else:
            async with unit_of_work(self.sessions) as s:
                identity = await sessions_service.authenticate(s, token)
        request.headers[IDENTITY_HEADER] = self.signer.sign(identity)
        return await self.inner.handle_async_request(request)


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def client_for(app: FastAPI, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[ClientFactory]:
    """`client_for(token, app=...)`: an httpx client whose cookie jar holds `token`."""
    opened: list[httpx.AsyncClient] = []

    def build(token: str | None = None, *, app_: FastAPI | None = None, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("base_url", BASE_URL)
        client = httpx.AsyncClient(transport=GatewayTransport(app_ or app, sessions, SIGNER), **kwargs)
        if token is not None:
            client.cookies.set("session_token", token)
        opened.append(client)
        return client

    yield build
    for client in opened:
        await client.aclose()


# ------------------------------------------------------------------------------------- callers


@dataclass
class Actor:
    """A user with a live session."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    email: str
    name: str | None
    token: str

    def identity(self, org_id: uuid.UUID | None = None, role: str | None = None) -> Identity:
        return Identity(
            state="ok",
            user_id=str(self.user_id),
            email=self.email,
            name=self.name,
            session_id=str(self.session_id),
            org_id=str(org_id) if org_id else None,
            org_exists=org_id is not None,
            role=role,
        )

    def caller(self) -> Caller:
        """As a route sees the actor (no organisation selected)."""
        return caller_of(self.identity())


@pytest.fixture
def make_user(db: Callable[[], Any], settings: Settings) -> Callable[..., Awaitable[Actor]]:
    async def build(email: str, name: str | None = None) -> Actor:
        async with db() as s:
            new = await auth_service.session_for_email(s, settings, email, name)
        return Actor(new.user_id, new.session_id, email, name, new.token)

    return build


@pytest.fixture
def join(db: Callable[[], Any]) -> Callable[..., Awaitable[None]]:
    """Make `actor` a member of `org_id` with `role` and switch their session to it."""

    async def do(actor: Actor, org_id: uuid.UUID, role: str) -> None:
        async with db() as s:
            await members_service.add_if_absent(s, org_id, actor.user_id, role)
            await organisations_service.enter(s, actor.caller(), org_id)

    return do


@dataclass
class World:
    """Org A (owner + admin, editor, viewer, a removed member), org B (its admin), a user without org."""

    org_a: uuid.UUID
    org_b: uuid.UUID
    owner: Actor
    admin: Actor
    editor: Actor
    viewer: Actor
    removed: Actor
    other: Actor
    no_org: Actor


@pytest.fixture
async def world(
    db: Callable[[], Any], make_user: Callable[..., Awaitable[Actor]], join: Callable[..., Awaitable[None]]
) -> World:
    owner = await make_user("owner@a.example", "Owner A")
    other = await make_user("admin@b.example", "Admin B")
    async with db() as s:
        org_a = (await organisations_service.create(s, owner.caller(), "Org A")).id
        org_b = (await organisations_service.create(s, other.caller(), "Org B")).id
    admin = await make_user("admin@a.example", "Admin A")
    editor = await make_user("editor@a.example", "Editor A")
    viewer = await make_user("viewer@a.example", None)
    removed = await make_user("removed@a.example", "Removed A")
    no_org = await make_user("fresh@example.com", "Fresh")
    for actor, role in ((admin, "admin"), (editor, "editor"), (viewer, "viewer"), (removed, "editor")):
        await join(actor, org_a, role)
    async with db() as s:
        await members_repository.remove(s, org_a, removed.user_id)
        await s.execute(text("DELETE FROM outbox"))
    return World(org_a, org_b, owner, admin, editor, viewer, removed, other, no_org)


@dataclass
class Clients:
    owner: httpx.AsyncClient
    admin: httpx.AsyncClient
    editor: httpx.AsyncClient
    viewer: httpx.AsyncClient
    removed: httpx.AsyncClient
    other_org: httpx.AsyncClient
    no_org: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    invalid: httpx.AsyncClient


@pytest.fixture
def clients(world: World, client_for: ClientFactory) -> Clients:
    return Clients(
        owner=client_for(world.owner.token),
        admin=client_for(world.admin.token),
        editor=client_for(world.editor.token),
        viewer=client_for(world.viewer.token),
        removed=client_for(world.removed.token),
        other_org=client_for(world.other.token),
        no_org=client_for(world.no_org.token),
        anonymous=client_for(),
        invalid=client_for("not-a-valid-session-token"),
    )


async def outbox_rows(db: Callable[[], Any], subject: str | None = None) -> list[dict[str, Any]]:
    import json

    async with db() as s:
        rows = (await s.execute(text("SELECT subject, payload, msg_id FROM outbox ORDER BY id"))).all()
    return [
        {"subject": r.subject, "payload": json.loads(r.payload), "msg_id": str(r.msg_id)}
        for r in rows
        if subject is None or r.subject == subject
    ]


@pytest.fixture
def outbox(db: Callable[[], Any]) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    return lambda subject=None: outbox_rows(db, subject)
