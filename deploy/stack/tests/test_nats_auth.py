"""NATS is not open to whoever reaches it: a client needs credentials, and each service's user
may publish and subscribe only its own subjects (icp_stack.infra.nats.PERMISSIONS). Attacks are
made with a real nats-server configured exactly like the stack's."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import NoServersError
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NoStreamResponseError

from icp_common import nats as nats_helpers
from icp_common.settings import NatsSettings
from icp_common.streams import AUDIT, AUDIT_DURABLE, IDENTITY, REALTIME
from icp_stack.infra.nats import PERMISSIONS, env_password_refs, nats_server_binary, render_authorization
from icp_stack.infra.process import ManagedProcess, ProcessSpec, http_ok
from icp_stack.ports import free_ports


class Violations:
    """The permission errors the server reports to one connection."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[str] = asyncio.Queue()

    async def record(self, exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            await self.errors.put(str(exc))

    async def next(self) -> str:
        return await asyncio.wait_for(self.errors.get(), 15)


@asynccontextmanager
async def client(url: str, user: str | None = None) -> AsyncIterator[tuple[NATS, Violations]]:
    violations = Violations()
    inbox = f"_INBOX.{user}" if user else "_INBOX"
    nc = await nats.connect(url, error_cb=violations.record, allow_reconnect=False, inbox_prefix=inbox)
    try:
        yield nc, violations
    finally:
        await nc.close()


async def _last_seq(admin: NATS, stream: str) -> int:
    return int((await admin.jetstream().stream_info(stream)).state.last_seq)


@pytest.fixture
async def admin(nats_server: Any) -> AsyncIterator[NATS]:
    nc = await nats.connect(nats_server.url)
    for spec in (IDENTITY, REALTIME):
        await nats_helpers.ensure_stream(nc, spec)
    yield nc
    await nc.close()


async def test_a_client_without_credentials_is_refused(nats_server: Any) -> None:
    with pytest.raises((NoServersError, nats.errors.Error, OSError)) as caught:
        await nats.connect(nats_server.plain_url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
    assert "authorization" in repr(caught.value).lower() or isinstance(caught.value, NoServersError)


async def test_a_wrong_password_is_refused(nats_server: Any) -> None:
    url = nats_server.user_url("gateway").replace(nats_server.passwords["gateway"], "guessed")
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)


@pytest.mark.parametrize(
    ("user", "subject", "stream"),
    [
        ("gateway", "realtime.{org}.runs", "REALTIME"),
        ("gateway", "identity.invitation.created", "IDENTITY"),
        ("notifications", "identity.invitation.created", "IDENTITY"),
        ("notifications", "realtime.{org}.runs", "REALTIME"),
        ("pipelines", "identity.membership.removed", "IDENTITY"),
        ("identity", "realtime.{org}.runs", "REALTIME"),
    ],
)
async def test_a_service_cannot_publish_another_services_subjects(
    nats_server: Any, admin: NATS, user: str, subject: str, stream: str
) -> None:
    subject = subject.format(org=uuid.uuid4())
    before = await _last_seq(admin, stream)
    async with client(nats_server.user_url(user), user) as (nc, violations):
        await nc.publish(subject, b'{"table": "runs", "event": "INSERT", "record": {"forged": true}}')
        assert subject.lower() in await violations.next()
        with pytest.raises((NoStreamResponseError, nats.errors.Error, TimeoutError)):
            await nc.jetstream().publish(subject, b"{}", timeout=2)
    assert await _last_seq(admin, stream) == before


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("notifications", "realtime.>"),
        ("notifications", "identity.session.revoked"),
        ("gateway", "identity.invitation.created"),
        ("gateway", "_INBOX.notifications.>"),
        ("pipelines", "_INBOX.gateway.>"),
        ("identity", ">"),
    ],
)
async def test_a_service_cannot_listen_to_what_it_does_not_consume(nats_server: Any, user: str, subject: str) -> None:
    async with client(nats_server.user_url(user), user) as (nc, violations):
        await nc.subscribe(subject)
        assert subject.lower() in await violations.next()


@pytest.mark.parametrize(
    ("user", "stream"), [("notifications", "REALTIME"), ("gateway", "IDENTITY"), ("pipelines", "AUDIT")]
)
async def test_a_service_cannot_read_another_stream_through_jetstream(
    nats_server: Any, admin: NATS, user: str, stream: str
) -> None:
    async with client(nats_server.user_url(user), user) as (nc, violations):
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await nc.jetstream().add_consumer(
                stream, ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy="none"), timeout=2
            )
        assert f"$JS.API.CONSUMER.CREATE.{stream}".lower() in await violations.next()


async def test_pipelines_creates_identitys_audit_durable_but_cannot_read_it(nats_server: Any, admin: NATS) -> None:
    """Pipelines may create AUDIT with identity's durable (it may start first), not pull from it."""
    async with client(nats_server.user_url("pipelines"), "pipelines") as (nc, violations):
        await nats_helpers.ensure_stream(nc, AUDIT)
        with pytest.raises((nats.errors.Error, TimeoutError)):
            reader = await nc.jetstream().pull_subscribe_bind(durable=AUDIT_DURABLE.name, stream=AUDIT.name)
            await reader.fetch(1, timeout=2)
        assert f"$JS.API.CONSUMER.MSG.NEXT.AUDIT.{AUDIT_DURABLE.name}".lower() in await violations.next()
    assert (await admin.jetstream().consumer_info(AUDIT.name, AUDIT_DURABLE.name)).name == AUDIT_DURABLE.name


async def test_the_gateway_cannot_reconfigure_the_realtime_stream(nats_server: Any, admin: NATS) -> None:
    before = (await admin.jetstream().stream_info(REALTIME.name)).config
    async with client(nats_server.user_url("gateway"), "gateway") as (nc, violations):
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await nc.jetstream(timeout=2).update_stream(StreamConfig(name=REALTIME.name, subjects=["realtime.x"]))
        assert "$JS.API.STREAM.UPDATE.REALTIME".lower() in await violations.next()
    assert (await admin.jetstream().stream_info(REALTIME.name)).config.subjects == before.subjects


async def test_only_the_admin_deletes_streams(nats_server: Any, admin: NATS) -> None:
    for user in PERMISSIONS:
        async with client(nats_server.user_url(user), user) as (nc, violations):
            with pytest.raises((nats.errors.Error, TimeoutError)):
                await nc.jetstream(timeout=2).delete_stream(REALTIME.name)
            assert "$JS.API.STREAM.DELETE.REALTIME".lower() in await violations.next()
    assert (await admin.jetstream().stream_info(REALTIME.name)).config.name == REALTIME.name


Step = Callable[[NATS], Awaitable[object]]


async def test_each_service_can_do_its_own_work(nats_server: Any, admin: NATS) -> None:
    """The other side: every service user can do what the service does (through icp_common)."""
    org = str(uuid.uuid4())
    steps: dict[str, list[Step]] = {
        "identity": [
            lambda nc: nats_helpers.ensure_stream(nc, IDENTITY),
            lambda nc: nc.jetstream().publish("identity.session.revoked", b"{}"),
        ],
        "pipelines": [
            lambda nc: nats_helpers.ensure_stream(nc, REALTIME),
            lambda nc: nc.jetstream().publish(f"realtime.{org}.runs", b"{}"),
            lambda nc: nc.subscribe("pipelines.runs.queued"),
        ],
        "gateway": [
            lambda nc: nats_helpers.ensure_stream(nc, REALTIME),
            lambda nc: nc.jetstream().subscribe("realtime.>", stream="REALTIME", ordered_consumer=True),
            lambda nc: nc.subscribe("identity.session.revoked"),
        ],
    }
    for user, actions in steps.items():
        settings = NatsSettings(url=nats_server.plain_url, user=user, password=nats_server.passwords[user])
        nc = await nats_helpers.connect(settings, f"test-{user}", attempts=1)
        violations = Violations()
        nc._error_cb = violations.record
        try:
            for action in actions:
                await action(nc)
            await nc.flush()
            assert violations.errors.empty(), violations.errors.get_nowait()
        finally:
            await nc.close()


REPO = Path(__file__).resolve().parents[3]
DEPLOYED = [REPO / "deploy" / "nats" / "auth.conf", REPO / "deploy" / "k8s" / "base" / "nats" / "auth.conf"]


@pytest.mark.parametrize("path", DEPLOYED, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_and_kubernetes_use_the_same_permissions(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.endswith(render_authorization(env_password_refs())), "regenerate: python -m icp_stack.infra.nats"


async def test_the_deployed_file_works_with_passwords_from_the_environment(infra_tmp_path: Path) -> None:
    """nats-server reads deploy/nats/auth.conf as compose and Kubernetes run it."""
    port, monitor = free_ports(2)
    passwords = {user: f"pw-{user}" for user in env_password_refs()}
    env = {**os.environ, **{ref[1:]: passwords[user] for user, ref in env_password_refs().items()}}
    argv = [str(nats_server_binary()), "-c", str(DEPLOYED[0]), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
    argv += ["-js", "-sd", str(infra_tmp_path / "store")]
    spec = ProcessSpec("nats", argv, env=env, ready=lambda: http_ok(f"http://127.0.0.1:{monitor}/healthz"))
    proc = ManagedProcess(spec, infra_tmp_path / "nats.log")
    proc.start()
    try:
        with pytest.raises((NoServersError, nats.errors.Error, OSError)):
            await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, max_reconnect_attempts=0)
        url = f"nats://gateway:{passwords['gateway']}@127.0.0.1:{port}"
        async with client(url, "gateway") as (nc, violations):
            await nc.publish("realtime.org.runs", b"{}")
            assert "realtime.org.runs" in await violations.next()
    finally:
        proc.stop()
