"""Notifications test fixtures: a real PostgreSQL database (migrated once per session), a real
NATS JetStream, real aiosmtpd servers on free ports, and the service app run through its
lifespan (database, NATS, outbox relay, consumer), exactly as `interloper-notifications serve`
runs it.

Each test gets its own streams, subjects and durable consumer (`Env`), so tests never see each
other's events; tables are truncated before each test."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common import nats as nats_helpers
from icp_common.db import create_engine, ensure_database, run_migrations
from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_common.settings import AddressBook, NatsSettings, PostgresSettings
from icp_notifications.app import create_app
from icp_notifications.db import MIGRATIONS_DIR
from icp_notifications.settings import AlertSettings, ConsumerSettings, Settings, SmtpSettings
from icp_protos.interloper.identity.v1 import identity_pb2 as pb
from icp_protos.interloper.identity.v1 import identity_pb2_grpc
from icp_stack.ports import free_port
from icp_testing.fixtures import nats_client

SECRET = "notifications-tests-secret"
PUBLIC_URL = "https://interloper.example.com"
FROM_ADDR = "noreply@interloper.dev"


# ------------------------------------------------------------------------------ infrastructure


@pytest.fixture(scope="session")
async def pg_settings(postgres_server: Any) -> PostgresSettings:
    name = f"notifications_test_{uuid.uuid4().hex[:8]}"
    settings = PostgresSettings(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        password=SecretStr(postgres_server.password or ""),
        database=name,
        pool_size=5,
    )
    await ensure_database(settings, name)
    await asyncio.to_thread(run_migrations, MIGRATIONS_DIR, settings.url(name))
    return settings


@pytest.fixture(scope="session")
async def engine(pg_settings: PostgresSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_settings.url(pg_settings.database), pool_size=3)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def clean_tables(request: pytest.FixtureRequest) -> None:
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE deliveries, outbox, alert_rules, alert_deliveries RESTART IDENTITY"))


class FakeIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """identity.v1 IssueInvitationLink as identity answers it, behind the real interceptor: the
    token of each pending invitation (registered by `Env.event`), NOT_FOUND for any other."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.calls: list[str] = []
        self.unavailable = False

    async def IssueInvitationLink(self, request: pb.IssueInvitationLinkRequest, context: Any) -> Any:
        self.calls.append(request.invitation_id)
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "identity is restarting")
        token = self.tokens.get(request.invitation_id)
        if token is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "Invitation not found")
        return pb.IssueInvitationLinkResponse(token=token)


@pytest.fixture(scope="session")
async def identity_server() -> AsyncIterator[tuple[FakeIdentity, str]]:
    fake = FakeIdentity()
    server, _, port = await start_server(
        0,
        lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(fake, s),
        secret=SECRET.encode(),
        signer=IdentitySigner(SECRET.encode(), audience="identity"),
    )
    yield fake, f"127.0.0.1:{port}"
    await server.stop(grace=None)


@pytest.fixture
def identity(identity_server: tuple[FakeIdentity, str]) -> FakeIdentity:
    fake = identity_server[0]
    fake.tokens.clear()
    fake.calls.clear()
    fake.unavailable = False
    return fake


@pytest.fixture(scope="session")
async def nc(nats_server: Any) -> AsyncIterator[NATS]:
    async with nats_client(nats_server, "notifications-tests") as client:
        yield client


# ---------------------------------------------------------------------------------- env


@dataclass
class Env:
    """One test's private streams/subjects, its settings, and helpers around them."""

    nc: NATS
    engine: AsyncEngine
    settings: Settings
    prefix: str
    identity: FakeIdentity

    @property
    def subject(self) -> str:
        return self.settings.notifications.subject

    def event(self, **overrides: Any) -> dict[str, Any]:
        """An `identity.invitation.created` payload as the identity service publishes it, plus
        (under "token", never published) the token identity issues for it over gRPC."""
        token = overrides.pop("token", None) or uuid.uuid4().hex + uuid.uuid4().hex[:11]
        payload: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "invitation_id": str(uuid.uuid4()),
            "org_id": str(uuid.uuid4()),
            "org_name": "Acme",
            "email": "bob@example.com",
            "role": "editor",
            "inviter_name": "Alice Admin",
            "inviter_email": "alice@example.com",
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat(),
        }
        payload.update(overrides)
        self.identity.tokens[str(payload["invitation_id"])] = token
        payload["token"] = token
        return payload

    async def publish(self, payload: dict[str, Any] | bytes, *, msg_id: str | None = None) -> None:
        """Publish like identity's outbox relay does (JSON body, Nats-Msg-Id = event id)."""
        if isinstance(payload, bytes):
            data, default_id = payload, uuid.uuid4().hex
        else:
            wire = {k: v for k, v in payload.items() if k != "token"}
            data, default_id = json.dumps(wire).encode(), str(payload.get("event_id"))
        headers = {"Nats-Msg-Id": msg_id or default_id, "X-Request-Id": uuid.uuid4().hex}
        await self.nc.jetstream().publish(self.subject, data, headers=headers)

    async def delivery(self, event_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(text("SELECT * FROM deliveries WHERE event_id = :id"), {"id": event_id}))
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def wait_delivery(
        self, event_id: str, predicate: Callable[[dict[str, Any]], bool], within: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        row: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            row = await self.delivery(event_id)
            if row is not None and predicate(row):
                return row
            await asyncio.sleep(0.05)
        raise AssertionError(f"delivery {event_id} did not reach the expected state: {row}")

    async def dead_letters(self, count: int = 1, within: float = 15.0) -> list[dict[str, Any]]:
        js = self.nc.jetstream()
        c = self.settings.notifications
        sub = await js.pull_subscribe(
            c.dead_letter_subject,
            stream=c.dead_letter_stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            messages = []
            deadline = time.monotonic() + within
            while len(messages) < count and time.monotonic() < deadline:
                try:
                    messages += await sub.fetch(count - len(messages), timeout=1)
                except TimeoutError:
                    continue
            for m in messages:
                await m.ack()
            return [{"data": json.loads(m.data), "headers": m.headers} for m in messages]
        finally:
            await sub.unsubscribe()

    def with_smtp(self, **smtp: Any) -> Settings:
        """These settings with some SMTP settings changed (e.g. `host=..., port=...`)."""
        values = self.settings.smtp.model_dump()
        values.update(smtp)
        return self.settings.model_copy(update={"smtp": SmtpSettings(**values)})

    def running(self, settings: Settings | None = None) -> Any:
        """`async with env.running(settings) as app:` the service, consumer bound."""
        return running(settings or self.settings)

    @staticmethod
    async def get(app: FastAPI, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as client:
            return await client.get(path)

    @staticmethod
    async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "condition") -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what} not met within {within} s")

    async def consumer_info(self) -> Any:
        c = self.settings.notifications
        return await self.nc.jetstream().consumer_info(c.stream, c.durable)

    async def wait_settled(self, within: float = 15.0) -> None:
        """Until the consumer has no message pending or waiting for an ack."""
        deadline = time.monotonic() + within
        info = None
        while time.monotonic() < deadline:
            info = await self.consumer_info()
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered >= 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"consumer not settled: {info}")


def make_settings(pg: PostgresSettings, nats_url: str, prefix: str, identity_target: str, **smtp: Any) -> Settings:
    smtp_defaults: dict[str, Any] = {
        "host": "",
        "port": 2525,
        "from_addr": FROM_ADDR,
        "security": "none",
        "timeout_seconds": 5.0,
        "max_attempts": 3,
        "retry_initial_seconds": 0.1,
        "retry_max_seconds": 0.4,
    }
    smtp_defaults.update(smtp)
    return Settings(
        internal_secret=SecretStr(SECRET),
        public_url=PUBLIC_URL,
        postgres=pg,
        nats=NatsSettings(url=nats_url),
        addresses=AddressBook(identity_grpc_target=identity_target),
        smtp=SmtpSettings(**smtp_defaults),
        notifications=ConsumerSettings(
            stream=f"{prefix.upper()}_IDENTITY",
            subject=f"{prefix}.identity.invitation.created",
            durable=f"notifications-{prefix}",
            concurrency=4,
            dead_letter_stream=f"{prefix.upper()}_DEAD",
            dead_letter_prefix=f"{prefix}.notifications.dead",
        ),
        alerts=AlertSettings(
            stream=f"{prefix.upper()}_PIPELINES",
            subject=f"{prefix}.pipelines.alerts.>",
            durable=f"notifications-alerts-{prefix}",
            allow_private_targets=True,  # the tests' webhook receivers listen on 127.0.0.1
            webhook_timeout_seconds=5.0,
            max_attempts=3,
            retry_initial_seconds=0.1,
            retry_max_seconds=0.4,
        ),
    )


@pytest.fixture
async def env(
    nc: NATS,
    engine: AsyncEngine,
    pg_settings: PostgresSettings,
    nats_server: Any,
    identity: FakeIdentity,
    identity_server: tuple[FakeIdentity, str],
) -> AsyncIterator[Env]:
    """Private streams for one test; the source stream is created as identity would create it."""
    prefix = f"nt{uuid.uuid4().hex[:8]}"
    settings = make_settings(pg_settings, nats_server.url, prefix, identity_server[1])
    await nats_helpers.ensure_stream(
        nc, nats_helpers.StreamSpec(settings.notifications.stream, [f"{prefix}.identity.>"])
    )
    await nats_helpers.ensure_stream(nc, nats_helpers.StreamSpec(settings.alerts.stream, [f"{prefix}.pipelines.>"]))
    yield Env(nc, engine, settings, prefix, identity)
    js = nc.jetstream()
    streams = (settings.notifications.stream, settings.notifications.dead_letter_stream, settings.alerts.stream)
    for stream in streams:
        with suppress(Exception):
            await js.delete_stream(stream)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    """The notifications app through its lifespan (as `serve` runs it), until the block ends."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        consumer = app.state.consumer
        deadline = time.monotonic() + 20
        while not consumer.bound and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert consumer.bound, "the consumer did not bind"
        yield app


# ---------------------------------------------------------------------------------- smtp


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    auth: Any = None


@dataclass
class Recorder:
    """aiosmtpd handler that records messages, or refuses them with a given reply."""

    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None  # e.g. "550 5.1.1 No such user"
    data_reply: str | None = None  # e.g. "451 4.3.0 Try again later"

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        assert isinstance(raw, bytes)
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw, session.auth_data)
        )
        return "250 Message accepted"

    async def wait(self, count: int = 1, within: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.received) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(self.received) >= count, f"expected {count} message(s), got {len(self.received)}"
        return self.received


@dataclass
class SmtpServer:
    host: str
    port: int
    recorder: Recorder
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Certificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 / localhost, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    base = tmp_path_factory.mktemp("tls")
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_path, key_path)


SmtpFactory = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server() -> Iterator[SmtpFactory]:
    """Start real aiosmtpd servers: `smtp_server(port=None, mode="plain"|"starttls"|"tls",
    certificate=None, credentials=None, rcpt_reply=None, data_reply=None)`; stopped at the end
    of the test. `rcpt_reply`/`data_reply` make it refuse (e.g. "550 5.1.1 No such user")."""
    started: list[SmtpServer] = []

    def start(
        port: int | None = None,
        *,
        mode: str = "plain",
        certificate: Certificate | None = None,
        credentials: tuple[str, str] | None = None,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
    ) -> SmtpServer:
        recorder = Recorder(rcpt_reply=rcpt_reply, data_reply=data_reply)
        port = port or free_port()
        kwargs: dict[str, Any] = {}
        if mode == "tls":
            assert certificate is not None
            kwargs["ssl_context"] = certificate.server_context()
        elif mode == "starttls":
            assert certificate is not None
            kwargs["tls_context"] = certificate.server_context()
            kwargs["require_starttls"] = True
        if credentials is not None:

            def authenticate(
                server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(auth_data, LoginPassword)
                    and (
                        auth_data.login.decode(),
                        auth_data.password.decode(),
                    )
                    == credentials
                )
                return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

            kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=mode != "plain")
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        server = SmtpServer("127.0.0.1", port, recorder, controller)
        started.append(server)
        return server

    yield start
    for server in started:
        with suppress(Exception):
            server.stop()
