"""Benchmark of two list endpoints through Traefik + gateway (not a test).

    INTERLOPER_CATALOG='["icp_pipelines.demo.DemoSource"]' uv run interloper-stack up --http-port 18080 &
    uv run python services/pipelines/bench/bench_lists.py http://127.0.0.1:18080

Signs in with the dev login, creates an organisation with 20 sources and 500 runs (one backfill),
then measures `GET /api/sources/` and `GET /api/runs/?limit=50` at concurrency 1 and 32 (bounded
number of requests, loopback only) and prints requests/s, p50 and p99."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import httpx


async def setup(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/auth/dev-login", params={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com"})
    assert r.status_code == 302, r.text
    r = await client.post("/api/organisations", json={"name": "bench"})
    assert r.status_code == 201, r.text
    for i in range(20):
        r = await client.post("/api/sources/", json={"key": "demo_source", "name": f"source {i}"})
        assert r.status_code == 200, r.text
    job = (await client.post("/api/jobs/", json={"name": "bench", "cron": "0 0 1 1 *", "enabled": False})).json()
    r = await client.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2022-01-01", "end_date": "2023-05-15", "concurrency": 1}
    )
    assert r.status_code == 200, r.text


async def measure(client: httpx.AsyncClient, path: str, concurrency: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            r = await client.get(path)
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text

    for _ in range(min(20, total)):  # warm-up
        await client.get(path)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def main(base_url: str) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        await setup(client)
        sources = (await client.get("/api/sources/")).json()
        runs = (await client.get("/api/runs/?limit=50")).json()
        print(f"{len(sources)} sources, {len(runs)} runs per page")
        for path in ("/api/sources/", "/api/runs/?limit=50"):
            for concurrency, total in ((1, 300), (32, 1500)):
                result = await measure(client, path, concurrency, total)
                print(
                    f"GET {path:22} c={concurrency:<3} {result['rps']:8.1f} req/s  "
                    f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"))
