"""Execution, measured the same way on both systems (definitions of
services/pipelines/bench/bench_execution.py):

* pickup: runs queued one at a time through the API while the worker is idle; queued -> dispatched
  is the time between the run's INSERT frame and its `dispatched` UPDATE frame on the realtime
  socket (the reference has no dispatch timestamp column; ours also gets `dispatched_at -
  created_at` from its database for the same runs);
* throughput: a burst of runs queued through the API by 16 clients; runs/min = finished runs /
  (last completed_at - first created_at), from each system's `runs` table."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.realtime import RunWatcher, open_socket, post_run, stats_ms
from bench.targets import TERMINAL, Target


async def pickup(
    target: Target, cookie: str, job_id: str, runs: int, *, budget: float, per_run_timeout: float
) -> dict[str, Any]:
    watcher = RunWatcher(await open_socket(target, cookie))
    picks: list[float] = []
    done: list[float] = []
    ids: list[str] = []
    missed = 0
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=target.base_url, cookies={"session_token": cookie}, timeout=30) as client:
            for _ in range(runs):
                if ids and time.monotonic() - started > budget:
                    break
                run_id = await post_run(client, job_id)
                ids.append(run_id)
                inserted = await watcher.wait(run_id, "INSERT", "*", 10)
                dispatched = await watcher.wait(run_id, "UPDATE", "dispatched", per_run_timeout)
                finished = await watcher.wait_any(run_id, "UPDATE", TERMINAL, per_run_timeout)
                if inserted is None or dispatched is None:
                    missed += 1
                    continue
                picks.append((dispatched - inserted) * 1000)
                if finished is not None:
                    done.append((finished - inserted) * 1000)
    finally:
        await watcher.close()
    result = stats_ms(picks)
    result.update({"queued_to_finished": stats_ms(done), "missed": missed, "samples_ms": [round(p, 2) for p in picks]})
    if target.name == "ours":
        result["db_dispatched_minus_created"] = await _db_pickup(target.dsn, ids)
    return result


async def _db_pickup(dsn: str, ids: list[str]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM dispatched_at - created_at) * 1000 AS ms FROM runs "
            "WHERE id = ANY($1::uuid[]) AND dispatched_at IS NOT NULL",
            [uuid.UUID(i) for i in ids],
        )
    finally:
        await conn.close()
    return stats_ms([float(r["ms"]) for r in rows])


async def throughput(target: Target, cookie: str, job_id: str, runs: int, *, within: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    ids: list[str] = []
    queue_started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=target.base_url, cookies={"session_token": cookie}, timeout=60, limits=limits
    ) as client:
        remaining = [runs]

        async def producer() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                ids.append(await post_run(client, job_id))

        await asyncio.gather(*(producer() for _ in range(16)))
    queued_seconds = time.monotonic() - queue_started
    wanted = [uuid.UUID(i) for i in ids]
    conn = await asyncpg.connect(target.dsn)
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await conn.fetch(
                "SELECT status, created_at, completed_at FROM runs WHERE id = ANY($1::uuid[])", wanted
            )
            finished = [r for r in rows if r["status"] in TERMINAL and r["completed_at"] is not None]
            if len(finished) == len(wanted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        first = min(r["created_at"] for r in rows)
        now = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    complete = len(finished) == len(wanted)
    last = max((r["completed_at"] for r in finished), default=now) if complete else now
    elapsed = max((last - first).total_seconds(), 1e-6)
    return {
        "runs": len(wanted),
        "finished": len(finished),
        "succeeded": sum(r["status"] == "success" for r in finished),
        "failed": sum(r["status"] == "failed" for r in finished),
        "complete": complete,
        "elapsed_s": round(elapsed, 2),
        "runs_per_min": round(len(finished) / elapsed * 60, 1),
        "queued_per_min": round(len(wanted) / queued_seconds * 60, 1) if queued_seconds else None,
    }
