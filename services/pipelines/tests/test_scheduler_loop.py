"""The scheduler leader's jobs run one at a time, each at its own interval, and a failing job
neither stops the others nor runs in a tight loop (no database: plain coroutines)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from icp_pipelines.scheduler.scheduler import Scheduler


async def test_jobs_never_overlap_and_each_keeps_its_interval() -> None:
    running: set[str] = set()
    overlaps: list[set[str]] = []
    calls: dict[str, int] = {"fast": 0, "slow": 0, "broken": 0}

    def job(name: str, fails: bool = False) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            if running:
                overlaps.append(set(running) | {name})
            running.add(name)
            calls[name] += 1
            try:
                await asyncio.sleep(0.01)  # a query's round trip: concurrent loops overlapped here
                if fails:
                    raise RuntimeError("database away")
                return 1
            finally:
                running.discard(name)

        return run

    jobs = [(0.05, job("fast"), "fast"), (0.3, job("slow"), "slow"), (0.05, job("broken", fails=True), "broken")]
    task = asyncio.create_task(Scheduler._one_after_another(jobs))
    await asyncio.sleep(0.62)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert overlaps == []
    # Every job ran at once, then at about its interval (each pass takes ~10 ms per job).
    assert 6 <= calls["fast"] <= 13, calls
    assert 2 <= calls["slow"] <= 3, calls
    assert 6 <= calls["broken"] <= 13, calls  # its failures are logged, it keeps its pace
