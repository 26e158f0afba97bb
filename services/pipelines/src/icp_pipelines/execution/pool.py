"""Child processes of a worker: a warm pool, one run per child at a time.

Starting Python with interloper-core and the catalog costs ~0.4 s of CPU, far more than a small
run, so children are started ahead (as many as the worker's concurrency) and reused for several
runs (`max_runs_per_child`; 1 = a fresh process for every run). A child that is killed (cancel,
shutdown), crashes or reaches its limit is replaced in the background.

A child belongs to the organisation of its first run and only ever executes runs of that
organisation: whatever a run leaves in its process (module globals, class-level
caches such as the core's MemoryDestination) can never be seen by another tenant. A run of
another organisation gets a fresh child (an idle child of another organisation is retired)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from icp_common.telemetry import RUN_PROCESS_ENV

from . import metrics, protocol

log = logging.getLogger(__name__)

STREAM_LIMIT = 16 * 1024 * 1024
OUTPUT_LINE_LIMIT = 64 * 1024  # a longer line of a run's stdout/stderr is cut into pieces
OUTPUT_DRAIN_TIMEOUT = 2.0  # s the end of a dead child's output is awaited (a grandchild may hold it)
OUTPUT_SETTLE_TIMEOUT = 10.0  # s a finished run's output is awaited up to the child's end mark

# Where a child's stdout/stderr lines go: (stream, line) -> None; set by the worker for a run.
OutputSink = Callable[[str, str], None]

# What a run process sees of the worker's environment: what Python, TLS, proxies and the catalog
# need, never the platform's secrets or addresses (INTERLOPER_INTERNAL_SECRET, database, NATS).
# Anything else a catalog needs is named in INTERLOPER_WORKER_RUN_ENV.
RUN_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONHASHSEED",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "GRPC_ENABLE_FORK_SUPPORT",
        "INTERLOPER_CATALOG",
        "INTERLOPER_DATA_DIR",
        "INTERLOPER_LOG_LEVEL",
        "INTERLOPER_LOG_FORMAT",
    }
)
RUN_ENV_PREFIXES = ("LC_",)


def run_environment(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The allow-listed part of `environ` (plus the names in `extra`) for a run process."""
    allowed = RUN_ENV_NAMES | RUN_PROCESS_ENV | set(extra)  # tracing's, without collector credentials
    return {k: v for k, v in environ.items() if k in allowed or k.startswith(RUN_ENV_PREFIXES)}


@dataclass(frozen=True)
class RunProcessConfig:
    """How run processes are started: their environment and, when set, the uid/gid they run as
    (the worker must be root or hold CAP_SETUID/CAP_SETGID to use them)."""

    env: dict[str, str]
    uid: int | None = None
    gid: int | None = None

    def drop_privileges(self) -> None:
        """In the forked child, before exec: no supplementary groups, then gid, then uid."""
        os.setgroups([])
        if self.gid is not None:
            os.setgid(self.gid)
        if self.uid is not None:
            os.setuid(self.uid)


class ChildError(Exception):
    """A child could not be started."""


class Child:
    def __init__(self, proc: asyncio.subprocess.Process, stdout: asyncio.StreamReader | None = None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.runs = 0
        self.killed = False
        self.owner: object | None = None  # the organisation it serves (None: fresh)
        self._messages: asyncio.Queue[protocol.Reply | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name=f"child-{proc.pid}-reader")
        # The run's output (issue 19): to `sink` during a run, else to the worker's stderr.
        self.sink: OutputSink | None = None
        self._outputs = [
            asyncio.create_task(self._read_output(name, stream), name=f"child-{proc.pid}-{name}")
            for name, stream in (("stdout", stdout), ("stderr", proc.stderr))
            if stream is not None
        ]
        self._marks = {task.get_name().rsplit("-", 1)[1]: asyncio.Event() for task in self._outputs}

    @staticmethod
    async def _exec(config: RunProcessConfig, stdout_fd: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "icp_pipelines.execution.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,  # the run's stderr: its logs (read line by line)
            limit=STREAM_LIMIT,
            start_new_session=True,  # its own process group: a kill takes its runner's processes too
            # Unbuffered: a line printed just before a crash still reaches the worker.
            env={**config.env, "PYTHONUNBUFFERED": "1"},
            pass_fds=(stdout_fd,),
            # uvloop takes no user=/group=: drop privileges between fork and exec instead.
            preexec_fn=config.drop_privileges if config.uid is not None or config.gid is not None else None,
        )

    @staticmethod
    async def _pipe() -> tuple[asyncio.StreamReader, int]:
        """A pipe for a child's stdout: the reader here, the write end's fd for the child."""
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=OUTPUT_LINE_LIMIT, loop=loop)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        return reader, write_fd

    @classmethod
    async def start(cls, catalog: list[str], start_timeout: float, config: RunProcessConfig | None = None) -> Child:
        config = config or RunProcessConfig(run_environment(os.environ))
        stdout, stdout_fd = await cls._pipe()
        try:
            proc = await cls._exec(config, stdout_fd)
        except OSError as exc:  # e.g. the run uid cannot execute the interpreter
            stdout.feed_eof()
            raise ChildError(f"cannot start a run process (uid {config.uid}, gid {config.gid}): {exc}") from exc
        finally:
            os.close(stdout_fd)  # the child holds it now: EOF comes when the child is gone
        child = cls(proc, stdout)
        try:
            await child.send({"t": "init", "catalog": catalog, "stdout_fd": stdout_fd})
            ready = await asyncio.wait_for(child.receive(), start_timeout)
        except (TimeoutError, OSError, ConnectionError) as exc:
            child.kill()
            await child.wait()
            raise ChildError(f"run process did not start: {exc or type(exc).__name__}") from exc
        if ready is None or ready["t"] != "ready":
            code = await child.wait()
            raise ChildError(f"run process exited while starting ({describe_exit(code)})")
        return child

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    message = protocol.decode_reply(line)
                except ValueError:
                    message = None
                if message is None:
                    log.warning("child %s sent a malformed line", self.pid)
                else:
                    self._messages.put_nowait(message)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:
            log.warning("child %s protocol error: %s", self.pid, exc)
            self.kill()
        finally:
            self._messages.put_nowait(None)

    async def _read_output(self, name: str, stream: asyncio.StreamReader) -> None:
        """Lines of the child's stdout or stderr until it closes them (a long line in pieces)."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than the reader's limit: dropped (the reader skips it)
                line = b"[a line longer than the limit was dropped]\n"
            except (ConnectionError, OSError):
                return
            if not line:
                return
            if line.endswith(protocol.OUTPUT_MARK):  # after a last line without its newline, too
                self._marks[name].set()
                line = line[: -len(protocol.OUTPUT_MARK)]
                if not line:
                    continue
            sink = self.sink
            if sink is None:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.buffer.write(line)
                    sys.stderr.flush()
            else:
                sink(name, line.decode(errors="replace").rstrip("\r\n"))

    def begin_output(self, sink: OutputSink) -> None:
        """A run starts: its output goes to `sink` (end marks of an earlier run are forgotten)."""
        for mark in self._marks.values():
            mark.clear()
        self.sink = sink

    async def settle_output(self) -> None:
        """Wait until the run's output was read up to the child's end-of-run mark on each pipe."""
        try:
            await asyncio.wait_for(asyncio.gather(*(m.wait() for m in self._marks.values())), OUTPUT_SETTLE_TIMEOUT)
        except TimeoutError:
            log.warning("child %s: the end of a run's output was not seen in time", self.pid)
        for mark in self._marks.values():
            mark.clear()

    async def drain_output(self) -> None:
        """Wait (briefly) until the child's stdout/stderr are read to their end."""
        if self._outputs:
            await asyncio.wait(self._outputs, timeout=OUTPUT_DRAIN_TIMEOUT)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.killed

    async def send(self, message: protocol.Command) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(protocol.encode(message))
        await self.proc.stdin.drain()

    async def receive(self) -> protocol.Reply | None:
        """The next message; None once the child's output ended (it exited or was killed)."""
        return await self._messages.get()

    def kill(self) -> None:
        self.killed = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> int:
        code = await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.drain_output()
        for task in self._outputs:
            task.cancel()
        return code

    async def close(self) -> None:
        """Stop a child between runs: EOF on its input, then a kill if it lingers."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 2)
            except TimeoutError:
                self.kill()
        await self.wait()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ChildPool:
    """Up to `size` children; `acquire` returns an idle one (starting one if needed)."""

    def __init__(
        self,
        size: int,
        catalog: list[str],
        *,
        max_runs: int,
        start_timeout: float,
        config: RunProcessConfig | None = None,
    ) -> None:
        self.size = size
        self.catalog = catalog
        self.config = config
        self.max_runs = max_runs
        self.start_timeout = start_timeout
        self._idle: list[Child] = []
        self._count = 0  # children alive or starting
        self._changed = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self.started = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def warm(self) -> None:
        """Start every child (in parallel); failures are logged, runs will retry."""
        missing = self.size - self._count
        await asyncio.gather(*(self._spawn_idle() for _ in range(missing)))

    async def _spawn(self) -> Child:
        self._count += 1
        try:
            child = await Child.start(self.catalog, self.start_timeout, self.config)
        except BaseException:
            self._count -= 1
            async with self._changed:
                self._changed.notify_all()
            raise
        self.started += 1
        metrics.RUN_PROCESSES_STARTED.inc()
        return child

    async def _spawn_idle(self) -> None:
        try:
            child = await self._spawn()
        except ChildError as exc:
            log.error("%s", exc)
            return
        await self._put(child)

    async def _put(self, child: Child) -> None:
        if self._closed:
            await self._discard(child)
            return
        async with self._changed:
            self._idle.append(child)
            self._changed.notify_all()

    async def acquire(self, owner: object = None) -> Child:
        """An idle child for a run of `owner` (an organisation): one that already served it, else
        a fresh one; if there is none, an idle child of another owner is replaced."""
        while True:
            async with self._changed:
                for dead in [c for c in self._idle if not c.alive]:
                    self._idle.remove(dead)
                    self._count -= 1
                    self._background_task(dead.wait())
                mine = [c for c in self._idle if c.owner == owner] or [c for c in self._idle if c.owner is None]
                if mine:
                    child = mine[-1]
                    self._idle.remove(child)
                    child.owner = owner
                    return child
                if self._count >= self.size and self._idle:
                    other = self._idle.pop(0)  # the longest idle
                    self._count -= 1
                    self._background_task(other.close())
                if self._count < self.size:
                    break
                await self._changed.wait()
        child = await self._spawn()
        child.owner = owner
        return child

    async def release(self, child: Child) -> None:
        """Back to the pool; a dead, killed or worn-out child is replaced in the background."""
        child.runs += 1
        if child.alive and (self.max_runs == 0 or child.runs < self.max_runs):
            await self._put(child)
            return
        await self._discard(child)
        if not self._closed:
            self._background_task(self._spawn_idle())

    async def _discard(self, child: Child) -> None:
        self._count -= 1
        self._background_task(child.close())
        async with self._changed:
            self._changed.notify_all()

    def _background_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(c.close() for c in idle), return_exceptions=True)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
