"""An asyncio process supervisor.

* starts children in dependency order (a child starts as soon as all its dependencies are ready),
  each gated by its readiness probe;
* multiplexes every child's stdout+stderr to one stream with a fixed-width (coloured on a tty)
  prefix, and appends it to ``<log_dir>/<name>.log``;
* restarts a child that exits unexpectedly, with exponential backoff (``restarting <name> (exit
  code N)``);
* stops children in reverse dependency order (dependents first, independent ones together):
  stop signal, then SIGKILL of the process group after a grace, everything within a total budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from icp_stack.infra.process import ComponentError, ProcessSpec, describe_exit, kill_group, popen_kwargs

_COLORS = ["36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91"]
_RESET = "\x1b[0m"
_TAIL_LINES = 60
_LOG_ROTATE_BYTES = 20 * 1024 * 1024
_STABLE_AFTER = 30.0

LineRenderer = Callable[[str, str, str], "str | None"]
"""(component, line, ANSI colour of the component or "") -> the console line, or None to leave it out."""


@dataclass
class Child:
    spec: ProcessSpec
    deps: tuple[str, ...]
    color: str = ""
    proc: asyncio.subprocess.Process | None = None
    state: str = "pending"  # pending, starting, ready, unready, restarting, failed, stopping, stopped
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.0
    stopping: bool = False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    log_path: Path | None = None
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    pump_task: asyncio.Task[None] | None = None
    watch_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None
        return self.proc.pid


class Supervisor:
    def __init__(
        self,
        *,
        out: TextIO | None = None,
        log_dir: Path | None = None,
        color: bool | None = None,
        on_change: Callable[[], None] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        prefix_width: int | None = None,
        render: LineRenderer | None = None,
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.render = render
        self.log_dir = log_dir
        if color is None:
            color = bool(getattr(self.out, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
        self.color = color
        self.on_change = on_change
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.children: dict[str, Child] = {}
        self._prefix_width = prefix_width

    # ------------------------------------------------------------------------------ output

    @property
    def prefix_width(self) -> int:
        if self._prefix_width is not None:
            return self._prefix_width
        return max([5, *(len(name) for name in self.children)])

    def _prefix(self, name: str, color: str) -> str:
        label = f"{name:<{self.prefix_width}}"
        if self.color and color:
            label = f"\x1b[{color}m{label}{_RESET}"
        return f"{label} | "

    def log(self, message: str) -> None:
        """A line of the supervisor itself."""
        self._write("stack", "1", message)

    def _write(self, name: str, color: str, line: str) -> None:
        if self.render is not None:
            text = self.render(name, line.rstrip("\n"), color if self.color else "")
            if text is None:
                return
        else:
            text = self._prefix(name, color) + line.rstrip("\n")
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception as exc:
                self.log(f"state callback failed: {exc!r}")

    # ------------------------------------------------------------------------------ registry

    def add(self, spec: ProcessSpec, deps: Iterable[str] = ()) -> Child:
        if spec.name in self.children:
            raise ValueError(f"duplicate component {spec.name}")
        known = [d for d in deps if d in self.children]
        child = Child(spec=spec, deps=tuple(known), color=_COLORS[len(self.children) % len(_COLORS)])
        if self.log_dir is not None:
            child.log_path = self.log_dir / f"{spec.name}.log"
        self.children[spec.name] = child
        return child

    def status(self) -> dict[str, dict[str, object]]:
        return {name: {"pid": c.pid, "state": c.state, "restarts": c.restarts} for name, c in self.children.items()}

    # ------------------------------------------------------------------------------ spawning

    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        spec = child.spec
        if spec.prepare is not None:
            await asyncio.to_thread(spec.prepare)
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                limit=1 << 20,
                **popen_kwargs(spec),
            )
        except OSError as exc:
            raise ComponentError(child.name, f"cannot execute {spec.argv[0]}: {exc}") from exc
        child.proc = proc
        child.started_at = time.monotonic()
        child.pump_task = asyncio.create_task(self._pump(child, proc), name=f"pump-{child.name}")
        return proc

    async def _pump(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        stream = proc.stdout
        if stream is None:
            return
        logfile = None
        if child.log_path is not None:
            try:
                child.log_path.parent.mkdir(parents=True, exist_ok=True)
                if child.log_path.exists() and child.log_path.stat().st_size > _LOG_ROTATE_BYTES:
                    child.log_path.replace(child.log_path.with_suffix(".log.1"))
                logfile = child.log_path.open("a", encoding="utf-8", errors="replace")
            except OSError:
                logfile = None
        try:
            while True:
                try:
                    raw = await stream.readline()
                except ValueError:
                    raw = b"[line longer than 1 MiB dropped]\n"
                except (ConnectionError, OSError):
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                child.tail.append(line)
                self._write(child.name, child.color, line)
                if logfile is not None:
                    try:
                        logfile.write(line + "\n")
                        logfile.flush()
                    except OSError:
                        pass
        finally:
            if logfile is not None:
                with contextlib.suppress(OSError):
                    logfile.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        child = self.children[name]
        return "\n".join(list(child.tail)[-lines:])

    async def _await_ready(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        spec = child.spec
        deadline = time.monotonic() + spec.ready_timeout
        delay = 0.05
        while True:
            if proc.returncode is not None:
                await self._drain(child)
                raise ComponentError(
                    child.name,
                    f"exited while starting ({describe_exit(proc.returncode)})",
                    self.log_tail(child.name),
                    child.log_path,
                )
            if spec.ready is None or await asyncio.to_thread(spec.ready):
                return
            if time.monotonic() >= deadline:
                raise ComponentError(
                    child.name,
                    f"not ready after {spec.ready_timeout:.0f} s (readiness check of {spec.address} failed; "
                    f"see the lines prefixed '{child.name}' above)",
                    self.log_tail(child.name),
                    child.log_path,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def _drain(self, child: Child, max_wait: float = 1.0) -> None:
        """Let the output pump finish the last lines of an exited child."""
        task = child.pump_task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), max_wait)

    # ------------------------------------------------------------------------------ starting

    async def start(self, name: str) -> None:
        """Spawn ``name`` and wait until it is ready; then supervise it (restarts)."""
        child = self.children[name]
        child.state = "starting"
        t0 = time.monotonic()
        self.log(f"starting {name}: {' '.join(child.spec.argv)}")
        try:
            proc = await self._spawn(child)
            self._changed()
            await self._await_ready(child, proc)
        except BaseException:
            child.state = "failed"
            self._changed()
            raise
        child.state = "ready"
        child.backoff = self.backoff_initial
        child.ready_event.set()
        self.log(f"{name} is ready in {time.monotonic() - t0:.1f} s (pid {proc.pid}, {child.spec.address})")
        self._changed()
        child.watch_task = asyncio.create_task(self._watch(child), name=f"watch-{name}")

    async def start_all(self) -> None:
        """Start every child, each as soon as its dependencies are ready. First failure wins."""

        async def start_after_deps(child: Child) -> None:
            for dep in child.deps:
                await self.children[dep].ready_event.wait()
            await self.start(child.name)

        tasks = [
            asyncio.create_task(start_after_deps(c), name=f"start-{c.name}")
            for c in self.children.values()
            if c.state == "pending"
        ]
        if not tasks:
            return
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        failure: BaseException | None = None
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                break
        if failure is not None:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failure

    # ------------------------------------------------------------------------------ watching

    async def _watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits unexpectedly."""
        while not child.stopping:
            proc = child.proc
            if proc is None:
                return
            code = await proc.wait()
            if child.stopping:
                return
            # Leftovers of its process group (postgres backends, uvicorn workers) would hold shared
            # memory or the listening port and prevent the restart.
            kill_group(proc.pid, signal.SIGKILL)
            await self._drain(child)
            if child.stopping:
                return
            child.ready_event.clear()
            child.state = "restarting"
            child.restarts += 1
            if time.monotonic() - child.started_at >= _STABLE_AFTER:
                child.backoff = self.backoff_initial
            delay = child.backoff or self.backoff_initial
            child.backoff = min(delay * 2, self.backoff_max)
            self.log(f"restarting {child.name} ({describe_exit(code)}) in {delay:.1f} s")
            self._changed()
            await self._respawn(child, delay)

    async def _respawn(self, child: Child, delay: float) -> None:
        while not child.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop_event.wait(), delay)
            if child.stopping:
                return
            try:
                proc = await self._spawn(child)
            except ComponentError as exc:
                delay = child.backoff
                child.backoff = min(delay * 2, self.backoff_max)
                self.log(f"cannot restart {child.name}: {exc}; retrying in {delay:.1f} s")
                continue
            self._changed()
            try:
                await self._await_ready(child, proc)
            except ComponentError as exc:
                if proc.returncode is None:
                    child.state = "unready"
                    self.log(f"{child.name} (pid {proc.pid}) is running but not ready: {exc}")
                    self._changed()
                    await self._keep_probing(child, proc)
                return  # _watch sees the exit (if any) and schedules the next restart
            child.state = "ready"
            child.ready_event.set()
            self.log(f"{child.name} is ready again (pid {proc.pid}, restart #{child.restarts})")
            self._changed()
            return

    async def _keep_probing(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        """A restarted child that is alive but not ready (e.g. its own dependency is restarting
        too): check again every second until it is ready or exits."""
        probe = child.spec.ready
        while not child.stopping and proc.returncode is None:
            if probe is None or await asyncio.to_thread(probe):
                child.state = "ready"
                child.ready_event.set()
                self.log(f"{child.name} is ready again (pid {proc.pid}, restart #{child.restarts})")
                self._changed()
                return
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------------------ stopping

    def _levels(self) -> dict[str, int]:
        levels: dict[str, int] = {}

        def level(name: str) -> int:
            if name not in levels:
                deps = self.children[name].deps
                levels[name] = 1 + max((level(d) for d in deps), default=0)
            return levels[name]

        for name in self.children:
            level(name)
        return levels

    async def stop_all(self, budget: float = 9.0, per_child_grace: float = 5.0) -> None:
        """Stop every child, dependents first; all are gone within ``budget`` seconds."""
        deadline = time.monotonic() + budget
        levels = self._levels()
        waves = sorted(set(levels.values()), reverse=True)
        for index, wave in enumerate(waves):
            names = [n for n, lv in levels.items() if lv == wave]
            remaining_waves = len(waves) - index
            grace = max(0.2, min(per_child_grace, (deadline - time.monotonic() - 0.3) / remaining_waves))
            await asyncio.gather(*(self._stop_child(self.children[n], grace) for n in names))
        self._changed()

    async def stop(self, name: str, grace: float = 5.0) -> None:
        await self._stop_child(self.children[name], grace)
        self._changed()

    async def _stop_child(self, child: Child, grace: float) -> None:
        child.stopping = True
        child.stop_event.set()
        watch = child.watch_task
        if watch is not None and not watch.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        proc = child.proc
        if proc is None:
            child.state = "stopped"
            return
        if proc.returncode is None:
            child.state = "stopping"
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, child.spec.stop_signal)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                self.log(f"{child.name} (pid {proc.pid}) did not stop within {grace:.1f} s: SIGKILL")
                kill_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 2.0)
        kill_group(proc.pid, signal.SIGKILL)  # leftovers of its process group
        await self._drain(child, 0.5)
        if child.pump_task is not None and not child.pump_task.done():
            child.pump_task.cancel()
        child.state = "stopped"
        child.ready_event.clear()
        self.log(f"{child.name} stopped ({describe_exit(proc.returncode)})")
