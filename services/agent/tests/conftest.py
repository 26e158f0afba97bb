"""Agent service test fixtures, all real: PostgreSQL, NATS, the pipelines service
(`interloper-pipelines serve` in a subprocess, demo catalog) and the agent itself
(`interloper-agent serve` in a subprocess, scripted model), so a chat runs the real ADK runner,
the real tools and real gRPC calls on behalf of the user.

Callers are signed identity assertions, exactly what the gateway forwards (the identity service
is not needed: the assertion is what the services trust). Each test gets fresh organisations."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.infra.process import ManagedProcess, ProcessSpec, http_ok
from icp_stack.ports import free_ports

SECRET = "agent-tests-secret"
SIGNER = IdentitySigner(SECRET.encode(), audience="agent")
MODEL_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "INTERLOPER_AGENT_MODEL")
BIN = Path(sys.executable).parent


def base_env(postgres_server: Any, nats_server: Any, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    env.update(postgres_server.env())
    env.update(nats_server.env())
    env.update(
        {
            "INTERLOPER_INTERNAL_SECRET": SECRET,
            "INTERLOPER_HTTP_HOST": "127.0.0.1",
            "INTERLOPER_DATA_DIR": str(data_dir),
            "INTERLOPER_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Service:
    url: str
    process: ManagedProcess
    grpc_target: str = ""
    database: str = ""


@pytest.fixture(scope="session")
def pipelines_service(postgres_server: Any, nats_server: Any, tmp_path_factory: Any) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("pipelines")
    http_port, grpc_port = free_ports(2)
    env = base_env(postgres_server, nats_server, base)
    env.update(
        {
            "INTERLOPER_POSTGRES_DATABASE": f"agent_tests_pipelines_{uuid.uuid4().hex[:8]}",
            "INTERLOPER_HTTP_PORT": str(http_port),
            "INTERLOPER_GRPC_PORT": str(grpc_port),
            "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS),
        }
    )
    url = f"http://127.0.0.1:{http_port}"
    spec = ProcessSpec(
        name="pipelines",
        argv=[str(BIN / "interloper-pipelines"), "serve"],
        env=env,
        ready=lambda: http_ok(f"{url}/readyz"),
        ready_timeout=90,
    )
    process = ManagedProcess(spec, base / "pipelines.log")
    process.start()
    try:
        yield Service(url, process, grpc_target=f"127.0.0.1:{grpc_port}")
    finally:
        process.stop()


class Script:
    """The scripted model's JSON script (re-read by the agent on every model call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set([])

    def set(self, conversations: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"conversations": conversations}), encoding="utf-8")
        tmp.replace(self.path)

    def conversation(self, message: str, *steps: dict[str, Any]) -> None:
        self.set([{"message": message, "steps": list(steps)}])


@pytest.fixture(scope="session")
def script_file(tmp_path_factory: Any) -> Script:
    return Script(tmp_path_factory.mktemp("script") / "script.json")


@pytest.fixture
def script(script_file: Script) -> Script:
    script_file.set([])
    return script_file


def agent_env(
    postgres_server: Any, nats_server: Any, pipelines: Service, data_dir: Path, database: str, model: str
) -> tuple[dict[str, str], int]:
    (port,) = free_ports(1)
    env = base_env(postgres_server, nats_server, data_dir)
    env.update(
        {
            "INTERLOPER_POSTGRES_DATABASE": database,
            "INTERLOPER_HTTP_PORT": str(port),
            "INTERLOPER_PIPELINES_GRPC_TARGET": pipelines.grpc_target,
            "INTERLOPER_PIPELINES_URL": pipelines.url,
            "INTERLOPER_AGENT_MODEL": model,
        }
    )
    return env, port


@pytest.fixture(scope="session")
def agent_service(
    postgres_server: Any, nats_server: Any, pipelines_service: Service, script_file: Script, tmp_path_factory: Any
) -> Iterator[Service]:
    """`interloper-agent serve` with the scripted model (restartable: `.process.restart()`)."""
    base = tmp_path_factory.mktemp("agent")
    database = f"agent_tests_agent_{uuid.uuid4().hex[:8]}"
    env, port = agent_env(
        postgres_server, nats_server, pipelines_service, base, database, f"scripted:{script_file.path}"
    )
    url = f"http://127.0.0.1:{port}"
    spec = ProcessSpec(
        name="agent",
        argv=[str(BIN / "interloper-agent"), "serve"],
        env=env,
        ready=lambda: http_ok(f"{url}/readyz"),
        ready_timeout=90,
    )
    process = ManagedProcess(spec, base / "agent.log")
    process.start()
    try:
        yield Service(url, process, database=database)
    finally:
        process.stop()


# ---------------------------------------------------------------------------------- callers


def member(org_id: str, role: str | None, user_id: str | None = None) -> Identity:
    user = user_id or str(uuid.uuid4())
    return Identity(
        state="ok",
        user_id=user,
        email=f"{user[:8]}@example.com",
        session_id=str(uuid.uuid4()),
        org_id=org_id,
        org_exists=True,
        role=role,
    )


@dataclass
class World:
    org: str
    other_org: str
    editor: Identity
    editor2: Identity
    viewer: Identity
    other: Identity
    editor_elsewhere: Identity  # the editor, with the other organisation active


@pytest.fixture
def world() -> World:
    org, other_org = str(uuid.uuid4()), str(uuid.uuid4())
    editor = member(org, "editor")
    return World(
        org=org,
        other_org=other_org,
        editor=editor,
        editor2=member(org, "admin"),
        viewer=member(org, "viewer"),
        other=member(other_org, "editor"),
        editor_elsewhere=member(other_org, "editor", user_id=editor.user_id),
    )


class SignedIdentity(httpx.Auth):
    """Signs the identity per request for one service, as the gateway does (assertions live 30 s)."""

    def __init__(self, identity: Identity | None, audience: str = "agent") -> None:
        self.identity = identity
        self.audience = audience

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self.identity is not None:
            request.headers[IDENTITY_HEADER] = SIGNER.sign(self.identity, audience=self.audience)
        yield request


ClientFactory = Callable[[Identity | None], httpx.AsyncClient]


@pytest.fixture
async def agent_as(agent_service: Service) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    def make(identity: Identity | None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=agent_service.url, auth=SignedIdentity(identity), timeout=30.0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def pipelines_as(pipelines_service: Service) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    def make(identity: Identity | None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=pipelines_service.url, auth=SignedIdentity(identity, "pipelines"), timeout=30.0
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# ------------------------------------------------------------------------------ pipelines data


@dataclass
class Pipeline:
    source: dict[str, Any]
    asset: dict[str, Any]
    job: dict[str, Any]


async def create_pipeline(client: httpx.AsyncClient) -> Pipeline:
    """A demo source, a standalone asset and a job running it."""
    r = await client.post("/api/sources/", json={"key": "demo_source", "name": "Demo"})
    assert r.status_code == 200, r.text
    source = r.json()
    r = await client.post("/api/assets/", json={"key": "demo_ping"})
    assert r.status_code == 201, r.text
    asset = r.json()
    r = await client.post("/api/jobs/", json={"name": "Nightly", "cron": "0 3 * * *", "asset_ids": [asset["id"]]})
    assert r.status_code == 200, r.text
    return Pipeline(source, asset, r.json())


async def runs_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/runs/")
    assert r.status_code == 200, r.text
    runs: list[dict[str, Any]] = r.json()
    return runs


# ------------------------------------------------------------------------------------- SSE


@dataclass
class Frame:
    event: str | None
    data: Any


def parse_frames(body: str) -> list[Frame]:
    frames = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        frames.append(Frame(event, data))
    return frames


async def chat(client: httpx.AsyncClient, session_id: str, message: str) -> tuple[httpx.Response, list[Frame]]:
    async with client.stream("POST", f"/api/agent/sessions/{session_id}/chat", json={"message": message}) as r:
        body = (await r.aread()).decode()
    return r, parse_frames(body) if r.status_code == 200 else []


def parts(frames: list[Frame], kind: str) -> list[dict[str, Any]]:
    """Every `functionCall`/`functionResponse`/`text` part of the streamed events, in order."""
    found = []
    for frame in frames:
        if frame.event is None:
            for part in frame.data.get("content", {}).get("parts", []):
                if kind in part:
                    found.append(part[kind])
    return found


async def new_session(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/api/agent/sessions")
    assert r.status_code == 200, r.text
    session: dict[str, Any] = r.json()
    return session


# ----------------------------------------------------------------------- in-process replicas


@pytest.fixture
def replica(
    agent_service: Service, pipelines_service: Service, postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Any]:
    """Another agent replica, in this process, on the same database as `agent_service`:
    `async with replica(model) as app:` (app.state.assistant is started)."""
    from contextlib import asynccontextmanager

    from asgi_lifespan import LifespanManager

    from icp_agent.app import create_app
    from icp_agent.settings import AgentSettings, Settings
    from icp_common.settings import AddressBook, PostgresSettings

    for name in MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    @asynccontextmanager
    async def start(model: str) -> AsyncIterator[Any]:
        settings = Settings(
            internal_secret=SECRET,
            postgres=PostgresSettings(
                host=postgres_server.host,
                port=postgres_server.port,
                user=postgres_server.user,
                password=postgres_server.password,
                database=agent_service.database,
                pool_size=2,
            ),
            addresses=AddressBook(pipelines_grpc_target=pipelines_service.grpc_target),
            agent=AgentSettings(model=model),
        )
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60):
            yield app

    return start


def asgi_client(app: Any, identity: Identity | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agent", auth=SignedIdentity(identity)
    )
