"""Per-process resources with psutil: a background sampler over every component of both systems
(each component = its process and all its descendants: PostgreSQL backends, the worker's run
processes), with named phases (CPU seconds used and peak RSS within each phase) and snapshots.

One pass reads the parent of every process once (/proc), then only the components' processes; the
sampler's own cost is part of `bench/client` in the results."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

MB = 1024 * 1024

PidSource = Callable[[], dict[str, int]]
Key = tuple[int, float]  # (pid, create time): pids are reused


class Sampler:
    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._sources: dict[str, tuple[PidSource, bool]] = {}
        self._lock = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        self._cpu: dict[Key, tuple[str, float]] = {}  # -> (component, cpu seconds so far)
        self._phase: str | None = None
        self._phase_start_cpu: dict[Key, float] = {}
        self._phase_peak: dict[str, float] = {}
        self._phase_started = 0.0
        self.phases: dict[str, dict[str, Any]] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def add(self, group: str, pids: PidSource, *, tree: bool = True) -> None:
        """`tree=False`: the processes alone, without their descendants (the benchmark client,
        whose children are the reference's processes and the load generator)."""
        with self._lock:
            self._sources[group] = (pids, tree)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _components(self) -> dict[str, list[int]]:
        """component -> its pids (root first)."""
        with self._lock:
            sources = dict(self._sources)
        roots: dict[str, tuple[int, bool]] = {}
        for group, (source, tree) in sources.items():
            try:
                pids = source()
            except Exception:
                pids = {}
            for name, pid in pids.items():
                roots[f"{group}/{name}"] = (pid, tree)
        children: dict[int, list[int]] = {}
        if any(tree for _, tree in roots.values()):
            for proc in psutil.process_iter(["ppid"]):
                children.setdefault(proc.info["ppid"] or 0, []).append(proc.pid)
        out: dict[str, list[int]] = {}
        for component, (root, tree) in roots.items():
            pids, todo = [root], [root] if tree else []
            while todo:
                kids = children.get(todo.pop(), [])
                pids += kids
                todo += kids
            out[component] = pids
        return out

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        try:
            if proc is None or not proc.is_running():
                proc = psutil.Process(pid)
                self._procs[pid] = proc
            return proc
        except psutil.Error:
            self._procs.pop(pid, None)
            return None

    def _measure(self) -> dict[str, list[tuple[Key, float, float]]]:
        """component -> [(key, rss MB, cpu s)] for each of its processes."""
        out: dict[str, list[tuple[Key, float, float]]] = {}
        for component, pids in self._components().items():
            rows = []
            for pid in pids:
                proc = self._proc(pid)
                if proc is None:
                    continue
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        rows.append(((pid, proc.create_time()), proc.memory_info().rss / MB, t.user + t.system))
                except psutil.Error:
                    continue
            out[component] = rows
        return out

    def _sample(self) -> None:
        measured = self._measure()
        with self._lock:
            for component, rows in measured.items():
                for key, _, cpu in rows:
                    self._cpu[key] = (component, cpu)
                rss = sum(r for _, r, _ in rows)
                self.peak_rss_mb[component] = max(self.peak_rss_mb.get(component, 0.0), rss)
                if self._phase is not None:
                    self._phase_peak[component] = max(self._phase_peak.get(component, 0.0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._sample()

    def snapshot(self) -> dict[str, dict[str, float]]:
        """RSS of each component now: the main process alone and with its descendants (MB)."""
        out: dict[str, dict[str, float]] = {}
        for component, rows in self._measure().items():
            if rows:
                out[component] = {
                    "rss_mb": round(rows[0][1], 1),
                    "tree_rss_mb": round(sum(r for _, r, _ in rows), 1),
                    "processes": len(rows),
                }
        return out

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._sample()
        with self._lock:
            self._phase = name
            self._phase_peak = {}
            self._phase_start_cpu = {k: v for k, (_, v) in self._cpu.items()}
            self._phase_started = time.monotonic()
        try:
            yield
        finally:
            self._sample()
            with self._lock:
                cpu: dict[str, float] = {}
                for key, (component, value) in self._cpu.items():
                    cpu[component] = cpu.get(component, 0.0) + value - self._phase_start_cpu.get(key, 0.0)
                self.phases[name] = {
                    "seconds": round(time.monotonic() - self._phase_started, 2),
                    "cpu_s": {k: round(v, 3) for k, v in sorted(cpu.items())},
                    "peak_rss_mb": {k: round(v, 1) for k, v in sorted(self._phase_peak.items())},
                }
                self._phase = None
