"""More processes of a component on a running stack, for the replica tests (test_replicas.py).

A replica is the component's own command started with the environment of the stack's process
(read from /proc/<pid>/environ: database role, NATS user, secret, address book) and ports of its
own, as test_auth_cache.py starts its second gateway. Also: the Prometheus counters of a process
and which process holds a PostgreSQL advisory lock (a leader)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from icp_stack.ports import free_port
from icp_stack.pytest_plugin import StackHandle

COMMANDS: dict[str, tuple[str, ...]] = {
    "gateway": ("interloper-gateway", "serve"),
    "pipelines": ("interloper-pipelines", "serve"),
    "pipelines-worker": ("interloper-pipelines", "worker"),
    "pipelines-scheduler": ("interloper-pipelines", "scheduler"),
    "notifications": ("interloper-notifications", "serve"),
}
WITH_GRPC = frozenset({"pipelines"})


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


@dataclass
class Replica:
    """One extra process of `component`, reachable at `url` (its own HTTP port)."""

    component: str
    url: str
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        wait_ready(self.url, self.alive, self.log)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (its sockets are closed by the kernel)."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def start_replica(
    stack: StackHandle, component: str, log_dir: Path, overrides: dict[str, str] | None = None, *, wait: bool = True
) -> Replica:
    """Start another `component` process like the stack's own one and (`wait`) until it is ready."""
    env = environ_of(int(stack.component(component)["pid"]))
    port = free_port()
    env["INTERLOPER_HTTP_PORT"] = str(port)
    if component in WITH_GRPC:
        env["INTERLOPER_GRPC_PORT"] = str(free_port())
    env.update(overrides or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{component}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name(COMMANDS[component][0])), *COMMANDS[component][1:]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    replica = Replica(component, f"http://127.0.0.1:{port}", log, process, env)
    if wait:
        try:
            replica.wait_ready()
        except BaseException:
            replica.stop()
            raise
    return replica


def wait_ready(
    url: str, alive: Callable[[], bool] | None = None, log: Path | None = None, timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        running = alive() if alive is not None else True
        if not running or time.monotonic() > deadline:
            detail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{url} not ready (running: {running})\n{detail}")
        time.sleep(0.2)


def counter(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of counter `name` (`..._total`) with `labels` on a process's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# A session lock taken with pg_try_advisory_lock(bigint) shows as classid = high 32 bits, objid =
# low 32 bits, objsubid = 1; our keys are CRC-32s (classid 0).
LOCK_HOLDER = (
    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
    " AND l.classid = 0 AND l.objid::text::bigint = $1 AND l.objsubid = 1 AND l.granted"
)


async def lock_holder(stack: StackHandle, database: str, key: int) -> int | None:
    """The client port of the connection holding advisory lock `key` (None: nobody holds it)."""
    connection = await asyncpg.connect(stack.postgres_dsn("postgres", database))
    try:
        port = await connection.fetchval(LOCK_HOLDER, key)
    finally:
        await connection.close()
    return None if port is None else int(port)


def process_with_local_port(port: int, candidates: list[int]) -> int | None:
    """Which of the `candidates` pids owns the TCP socket whose local port is `port`."""
    for pid in candidates:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.laddr and c.laddr.port == port for c in connections):
            return pid
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
