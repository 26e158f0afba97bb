"""Realtime: time from `POST /api/jobs/{id}/run` to the run's `runs` INSERT frame on `/api/ws`,
with one socket open and with many sockets open across several organisations (one asyncio
process; every socket is read continuously, as a browser tab would)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.targets import Target


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def stats_ms(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": round(statistics.median(values), 2) if values else None,
        "p90_ms": round(percentile(values, 90) or 0, 2) if values else None,
        "p99_ms": round(percentile(values, 99) or 0, 2) if values else None,
        "max_ms": round(max(values), 2) if values else None,
        "mean_ms": round(statistics.fmean(values), 2) if values else None,
    }


class RunWatcher:
    """One socket that records when each run's frames arrive: (run id, event, status) -> time."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.seen: dict[tuple[str, str, str], float] = {}
        self.frames = 0
        self._waiters: dict[tuple[str, str, str], asyncio.Future[float]] = {}
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.socket:
                now = time.perf_counter()
                self.frames += 1
                try:
                    frame = json.loads(message)
                except ValueError:
                    continue
                if frame.get("table") != "runs":
                    continue
                record = frame.get("record") or {}
                run_id, event = str(record.get("id")), str(frame.get("event"))
                for key in ((run_id, event, str(record.get("status"))), (run_id, event, "*")):
                    self.seen.setdefault(key, now)
                    waiter = self._waiters.pop(key, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(self.seen[key])

    async def wait(self, run_id: str, event: str, status: str, within: float) -> float | None:
        key = (run_id, event, status)
        if key in self.seen:
            return self.seen[key]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(key, None)

    async def wait_any(self, run_id: str, event: str, statuses: tuple[str, ...], within: float) -> float | None:
        deadline = time.perf_counter() + within
        while True:
            for status in statuses:
                if (run_id, event, status) in self.seen:
                    return self.seen[(run_id, event, status)]
            if time.perf_counter() >= deadline:
                return None
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.socket.close()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


async def open_socket(target: Target, cookie: str) -> ClientConnection:
    return await connect(
        target.ws_url,
        additional_headers={"Cookie": f"session_token={cookie}"},
        open_timeout=30,
        max_size=None,
        max_queue=None,
        ping_interval=None,
        compression=None,
    )


async def _drain(socket: ClientConnection, counter: list[int]) -> None:
    with contextlib.suppress(Exception):
        async for _ in socket:
            counter[0] += 1


async def post_run(client: httpx.AsyncClient, job_id: str) -> str:
    r = await client.post(f"/api/jobs/{job_id}/run", json={})
    if r.status_code != 200:
        raise RuntimeError(f"POST run: {r.status_code} {r.text[:200]}")
    return str(r.json()["run_id"])


async def latency(
    target: Target,
    cookie: str,
    job_id: str,
    runs: int,
    *,
    crowd: list[tuple[str, int]] | None = None,
    frame_wait: float = 5.0,
) -> dict[str, Any]:
    """`runs` runs posted one after the other; each waits for its INSERT frame. `crowd`: extra
    sockets to hold open during the measurement, as (cookie, count) per organisation."""
    extra: list[ClientConnection] = []
    drains: list[asyncio.Task[None]] = []
    counter = [0]
    open_started = time.perf_counter()
    open_failures = 0
    if crowd:
        sem = asyncio.Semaphore(50)

        async def opener(c: str) -> None:
            nonlocal open_failures
            async with sem:
                try:
                    s = await open_socket(target, c)
                except Exception:
                    open_failures += 1
                    return
                extra.append(s)
                drains.append(asyncio.create_task(_drain(s, counter)))

        await asyncio.gather(*(opener(c) for c, n in crowd for _ in range(n)))
    open_seconds = time.perf_counter() - open_started
    watcher = RunWatcher(await open_socket(target, cookie))
    samples: list[float] = []
    post_ms: list[float] = []
    after_ms: list[float] = []
    lost = 0
    try:
        async with httpx.AsyncClient(base_url=target.base_url, cookies={"session_token": cookie}, timeout=30) as client:
            await post_run(client, job_id)  # warm the connection
            await asyncio.sleep(0.2)
            for _ in range(runs):
                t0 = time.perf_counter()
                run_id = await post_run(client, job_id)
                answered = time.perf_counter()
                post_ms.append((answered - t0) * 1000)
                arrived = await watcher.wait(run_id, "INSERT", "*", frame_wait)
                if arrived is None:
                    lost += 1
                else:
                    samples.append((arrived - t0) * 1000)
                    after_ms.append((arrived - answered) * 1000)
    finally:
        await watcher.close()
        for s in extra:
            with contextlib.suppress(Exception):
                await s.close()
        for d in drains:
            d.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
    result = stats_ms(samples)
    result.update(
        {
            "lost": lost,
            "post": stats_ms(post_ms),
            "frame_after_response": stats_ms(after_ms),
            "sockets": 1 + len(extra),
            "socket_open_failures": open_failures,
            "sockets_open_seconds": round(open_seconds, 2),
            "crowd_frames": counter[0],
            "samples_ms": [round(s, 3) for s in samples],
        }
    )
    return result
