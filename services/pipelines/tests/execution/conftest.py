"""Execution tests: a database of their own, real `interloper-pipelines worker` and `scheduler`
processes (short intervals), and the API in-process (ASGI) on the same database. The processes'
outbox relays publish what the API writes, so workers are woken through NATS as in production.

The cluster (2 workers, 1 scheduler) is shared by the tests of this directory; tests that kill a
process restart it. Tables are truncated before each test (other tests' rows never interfere)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from icp_common.db import create_engine, create_sessionmaker, run_migrations, unit_of_work
from icp_common.identity import Identity
from icp_common.resources import ServiceResources
from icp_common.settings import NatsSettings, PostgresSettings
from icp_pipelines.app import create_app
from icp_pipelines.db import MIGRATIONS_DIR, SERVICE
from icp_pipelines.demo import CATALOG_PATHS
from icp_pipelines.settings import Settings
from icp_stack.infra.process import ManagedProcess, ProcessSpec, http_ok
from icp_stack.ports import free_port

from ..conftest import SECRET, TABLES, SignedIdentityTransport, member

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # the test catalog, for the in-process API
TEST_CATALOG = [
    *CATALOG_PATHS,
    "icp_exec_testcatalog.SlowAsset",
    "icp_exec_testcatalog.DailyAsset",
    "icp_exec_testcatalog.NoisyAsset",
    "icp_exec_testcatalog.ReaderAsset",
    "icp_exec_testcatalog.EnvAsset",
    "icp_exec_oauth.ProbeSource",
    "icp_exec_testcatalog.ChattyAsset",
    "icp_exec_testcatalog.SecretSource",
]
# The platform's Google OAuth app, as the fake providers' credentials (the workers resolve the
# exchange's `platform:oauth/google/client_secret` with it).
OAUTH_APP = {
    "INTERLOPER_OAUTH_GOOGLE_CLIENT_ID": "google-client-id",
    "INTERLOPER_OAUTH_GOOGLE_CLIENT_SECRET": "google-client-secret",
    "INTERLOPER_OAUTH_GOOGLE_REDIRECT_URI": "http://ui.example/auth/google",
}
FAST = {
    "INTERLOPER_WORKER_CONCURRENCY": "3",
    "INTERLOPER_WORKER_POLL_INTERVAL": "5",
    "INTERLOPER_WORKER_HEARTBEAT_INTERVAL": "0.5",
    "INTERLOPER_WORKER_SHUTDOWN_GRACE": "1",
    "INTERLOPER_WORKER_RUN_LOG_MAX_BYTES": "200000",
    "INTERLOPER_CRON_RECONCILE_INTERVAL": "0.2",
    "INTERLOPER_REAPER_POLL_INTERVAL": "0.5",
    "INTERLOPER_REAPER_HEARTBEAT_TIMEOUT": "3",
    "INTERLOPER_SCHEDULER_LEADER_RETRY_INTERVAL": "0.3",
    "INTERLOPER_SCHEDULER_LEADER_CHECK_INTERVAL": "0.5",
    "INTERLOPER_LOG_FORMAT": "text",
}


@pytest.fixture(scope="session")
async def exec_database_url(postgres_server: Any) -> str:
    name = f"pipelines_exec_{uuid.uuid4().hex[:8]}"
    await postgres_server.acreate_database(name)
    url: str = postgres_server.url(name)
    await asyncio.to_thread(run_migrations, MIGRATIONS_DIR, url)
    return url


@pytest.fixture(scope="session")
async def exec_engine(exec_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(exec_database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def exec_sessions(exec_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(exec_engine)


@pytest.fixture(scope="session")
def exec_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exec-data")


@pytest.fixture(scope="session")
def exec_env(postgres_server: Any, nats_server: Any, exec_database_url: str, exec_data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    env.update(postgres_server.env())
    env.update(nats_server.env())
    env.update(FAST)
    env.update(OAUTH_APP)
    env.update(
        {
            "INTERLOPER_POSTGRES_DATABASE": exec_database_url.rsplit("/", 1)[1],
            "INTERLOPER_INTERNAL_SECRET": SECRET,
            "INTERLOPER_CATALOG": json.dumps(TEST_CATALOG),
            "INTERLOPER_DATA_DIR": str(exec_data_dir),
            "INTERLOPER_HTTP_HOST": "127.0.0.1",
            "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture(scope="session")
def exec_settings(postgres_server: Any, nats_server: Any, exec_database_url: str, exec_data_dir: Path) -> Settings:
    return Settings(
        internal_secret=SECRET,
        catalog=TEST_CATALOG,
        data_dir=str(exec_data_dir),
        postgres=PostgresSettings(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password=postgres_server.password,
            database=exec_database_url.rsplit("/", 1)[1],
        ),
        nats=NatsSettings(url=nats_server.url),
    )


@pytest.fixture(scope="session")
def exec_app(
    exec_settings: Settings, exec_engine: AsyncEngine, exec_sessions: async_sessionmaker[AsyncSession]
) -> FastAPI:
    held = ServiceResources(SERVICE, exec_settings, migrations_dir=MIGRATIONS_DIR, use_nats=False)
    held.engine, held.sessions = exec_engine, exec_sessions
    return create_app(exec_settings, resources=held)


# ------------------------------------------------------------------------------------ processes


@dataclass
class PipelinesProcess:
    """One `interloper-pipelines <role>` process (log in the test's tmp dir)."""

    role: str
    env: dict[str, str]
    log_dir: Path
    name: str
    port: int = 0
    proc: ManagedProcess | None = None

    def _spec(self) -> ProcessSpec:
        exe = Path(sys.executable).parent / "interloper-pipelines"
        env = {**self.env, "INTERLOPER_HTTP_PORT": str(self.port)}
        url = f"http://127.0.0.1:{self.port}/readyz"
        return ProcessSpec(self.name, [str(exe), self.role], env=env, ready=lambda: http_ok(url), ready_timeout=60)

    async def start(self) -> None:
        self.port = free_port()
        self.proc = ManagedProcess(self._spec(), self.log_dir / f"{self.name}.log")
        await self.proc.astart()

    @property
    def pid(self) -> int:
        assert self.proc is not None and self.proc.pid is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is not None:
            await self.proc.astop(grace=10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def log(self) -> str:
        return self.proc.log_tail(60) if self.proc else ""


@dataclass
class Cluster:
    env: dict[str, str]
    log_dir: Path
    workers: list[PipelinesProcess] = field(default_factory=list)
    schedulers: list[PipelinesProcess] = field(default_factory=list)

    async def add(self, role: str, env: dict[str, str] | None = None) -> PipelinesProcess:
        group = self.workers if role == "worker" else self.schedulers
        proc = PipelinesProcess(role, {**self.env, **(env or {})}, self.log_dir, f"{role}-{len(group) + 1}")
        await proc.start()
        group.append(proc)
        return proc

    async def remove(self, proc: PipelinesProcess) -> None:
        await proc.stop()
        for group in (self.workers, self.schedulers):
            if proc in group:
                group.remove(proc)

    def worker_by_pid(self, pid: int) -> PipelinesProcess:
        return next(w for w in self.workers if w.proc is not None and w.proc.pid == pid)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in [*self.workers, *self.schedulers])


@pytest.fixture(scope="session")
async def cluster(exec_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    built = Cluster(exec_env, tmp_path_factory.mktemp("exec-logs"))
    await asyncio.gather(built.add("worker"), built.add("scheduler"))
    await built.add("worker")
    yield built
    await asyncio.gather(*(p.stop() for p in [*built.workers, *built.schedulers]))


# ------------------------------------------------------------------------------------- per test


@pytest.fixture(autouse=True)
async def exec_clean(exec_engine: AsyncEngine) -> None:
    async with exec_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def exec_db(exec_sessions: async_sessionmaker[AsyncSession]) -> Callable[[], Any]:
    return lambda: unit_of_work(exec_sessions)


@dataclass(eq=False)
class Org:
    org_id: uuid.UUID
    editor: httpx.AsyncClient
    viewer: httpx.AsyncClient
    identity: Identity


@pytest.fixture
async def orgs(exec_app: FastAPI) -> AsyncIterator[Callable[[], Any]]:
    """`await orgs()` -> a fresh organisation with an editor and a viewer client."""
    made: list[httpx.AsyncClient] = []

    async def make() -> Org:
        org_id = uuid.uuid4()
        editor, viewer = member(org_id, "editor"), member(org_id, "viewer")
        clients = [
            httpx.AsyncClient(transport=SignedIdentityTransport(exec_app, i), base_url="http://testserver", timeout=30)
            for i in (editor, viewer)
        ]
        made.extend(clients)
        return Org(org_id, clients[0], clients[1], editor)

    yield make
    for c in made:
        await c.aclose()


# -------------------------------------------------------------------------------------- helpers


async def wait_for(probe: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Call (and await) `probe()` until it returns something truthy; else fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: last value {value!r}")


async def run_status(client: httpx.AsyncClient, run_id: str) -> str:
    r = await client.get(f"/api/runs/{run_id}")
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


async def wait_run(client: httpx.AsyncClient, run_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> str:
    async def probe() -> str | None:
        status = await run_status(client, run_id)
        return status if status in statuses else None

    result: str = await wait_for(probe, timeout, what=f"run {run_id} in {statuses}")
    return result


async def events_of(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/runs/{run_id}/events")
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


def process_gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def pid_in(path: Path) -> int | None:
    """The process id an asset wrote to `path` (None until it did)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text else None
