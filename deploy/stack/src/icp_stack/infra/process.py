"""Child process plumbing shared by the supervisor and the pytest fixtures.

A :class:`ProcessSpec` says how to run one component (argv, environment, system user, readiness
probe, stop signal). :class:`ManagedProcess` runs one spec without a supervisor (pytest fixtures,
scripts). Every child runs in its own process group and gets a parent-death signal, so nothing is
left behind even when the parent is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from icp_common.config_errors import CONFIG_ERROR_EXIT

Probe = Callable[[], bool]

_PR_SET_PDEATHSIG = 1


class ComponentError(RuntimeError):
    """A component could not be prepared, started or made ready."""

    def __init__(self, name: str, message: str, log_tail: str = "", log_path: Path | None = None) -> None:
        self.name = name
        self.log_tail = log_tail
        self.log_path = log_path
        text = f"{name}: {message}"
        if log_path is not None:
            text += f" (log: {log_path})"
        if log_tail.strip():
            text += f"\n--- last lines of {name} ---\n{log_tail.rstrip()}\n--- end of {name} ---"
        super().__init__(text)


@dataclass
class ProcessSpec:
    """How to run one component."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    """Complete environment of the child (``None`` inherits ours)."""
    cwd: str | None = None
    user: str | None = None
    """System user to run as (needs root); ``None`` keeps ours."""
    ready: Probe | None = None
    """Blocking readiness probe (called from a worker thread by async code); ``None`` = ready at once."""
    ready_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    death_signal: int = signal.SIGKILL
    """Signal the child gets when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    prepare: Callable[[], None] | None = None
    """Blocking preparation run before every (re)start (initdb, stale pid files, config rendering)."""
    address: str = ""
    """Human readable address for the startup table."""
    info: dict[str, Any] = field(default_factory=dict)
    """Addresses and ports published in stack.json."""


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def child_preexec(death_signal: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send ``death_signal`` to the child when we die.

    It runs in the forked child after ``user=``/``process_group=`` are applied (credential changes
    reset the parent-death signal, so the order matters). If we already died between fork and
    ``prctl``, the child exits at once.

    The kernel sends the signal when the *thread* that forked exits, so it is only armed when
    called on the main thread (a child forked from a worker thread would die with that thread).
    """
    libc = _LIBC
    if libc is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def popen_kwargs(spec: ProcessSpec) -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen``/``asyncio.create_subprocess_exec``."""
    kwargs: dict[str, Any] = {
        "process_group": 0,
        "stdin": subprocess.DEVNULL,
        "close_fds": True,
    }
    preexec = child_preexec(spec.death_signal)
    if preexec is not None:
        kwargs["preexec_fn"] = preexec
    if spec.env is not None:
        kwargs["env"] = dict(spec.env)
    if spec.cwd is not None:
        kwargs["cwd"] = spec.cwd
    if spec.user is not None and os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(spec.user)
        kwargs["user"] = entry.pw_uid
        kwargs["group"] = entry.pw_gid
        kwargs["extra_groups"] = []
    return kwargs


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def signal_name(code: int) -> str:
    """``-9`` -> ``SIGKILL``; positive codes -> ``""``."""
    if code >= 0:
        return ""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code == CONFIG_ERROR_EXIT:  # the service printed which variable is wrong
        return f"exit code {code}: configuration error"
    name = signal_name(code)
    return f"exit code {code} ({name})" if name else f"exit code {code}"


def tail_file(path: Path, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a (log) file, "" when missing."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------- probes


def http_ok(url: str, timeout: float = 2.0, expect: int = 200) -> bool:
    """True when ``GET url`` answers ``expect`` (no proxies, no exceptions)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status) == expect
    except urllib.error.HTTPError as exc:
        return exc.code == expect
    except (OSError, ValueError):
        return False


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def all_of(*probes: Probe) -> Probe:
    def probe() -> bool:
        return all(p() for p in probes)

    return probe


def wait_ready(
    name: str,
    probe: Probe | None,
    timeout: float,
    alive: Callable[[], int | None] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``probe`` until True. ``alive`` returns the exit code once the process died."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if alive is not None:
            code = alive()
            if code is not None:
                raise ComponentError(
                    name,
                    f"exited while starting ({describe_exit(code)})",
                    tail_file(log_path) if log_path else "",
                    log_path,
                )
        if probe is None or probe():
            return
        if time.monotonic() >= deadline:
            raise ComponentError(
                name,
                f"not ready after {timeout:.0f} s",
                tail_file(log_path) if log_path else "",
                log_path,
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


# ------------------------------------------------------------------------------ ManagedProcess


class ManagedProcess:
    """One component run without a supervisor: output goes to ``log_path``.

    ``start()``/``stop()``/``restart()`` block; ``astart()``/``astop()`` are the asyncio variants
    (the fork always happens on the calling thread, which is what the parent-death signal follows).
    """

    def __init__(self, spec: ProcessSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return tail_file(self.log_path, lines)

    def _spawn(self) -> None:
        if self.running:
            raise ComponentError(self.spec.name, "already running")
        if self.spec.prepare is not None:
            self.spec.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(f"--- starting {self.spec.name}: {' '.join(self.spec.argv)}\n")
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                list(self.spec.argv),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                **popen_kwargs(self.spec),
            )
        except OSError as exc:
            raise ComponentError(self.spec.name, f"cannot start {self.spec.argv[0]}: {exc}") from exc

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            wait_ready(self.spec.name, self.spec.ready, self.spec.ready_timeout, proc.poll, self.log_path)
        except ComponentError:
            self.stop()
            raise

    def start(self) -> None:
        self._spawn()
        self._wait_ready()

    async def astart(self) -> None:
        self._spawn()
        await asyncio.to_thread(self._wait_ready)

    def stop(self, grace: float = 5.0) -> int | None:
        """Send the stop signal, SIGKILL the process group after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.spec.stop_signal)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait()
        kill_group(proc.pid)  # leftovers of the group (e.g. postgres backends)
        self._close_log()
        return proc.returncode

    async def astop(self, grace: float = 5.0) -> int | None:
        return await asyncio.to_thread(self.stop, grace)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Simulate a crash: signal the main process only and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            self._proc.wait()

    def restart(self, grace: float = 5.0) -> None:
        self.stop(grace)
        self.start()

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
