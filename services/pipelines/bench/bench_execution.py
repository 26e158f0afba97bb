"""Benchmark of run execution through Traefik + gateway + pipelines API + worker (not a test).

    uv run python services/pipelines/bench/bench_execution.py            # starts a private stack
    uv run python services/pipelines/bench/bench_execution.py --data-dir .data   # a running stack

With `--data-dir` it uses the stack described by `<data dir>/stack.json` (its Traefik URL and its
PostgreSQL, for the runs' worker timestamps); otherwise it starts `interloper-stack up` in a
temp dir with the demo catalog and default worker settings, and stops it at the end.

Signs in with the dev login, creates an organisation and a job over one standalone asset
(`demo_ping`: one trivial asset, no destination), then measures

* pickup latency: runs queued one at a time (the worker idle), `dispatched_at - created_at`
  (queued -> dispatched, from the database), p50/p99, plus queued -> success;
* throughput: a burst of runs queued through the API as fast as it takes them (16 clients), then
  end to end = first created -> last completed, in runs per minute, all runs must succeed; and the
  CPU time each component of the stack spent per run meanwhile (from /proc)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx

from icp_pipelines.demo import CATALOG_PATHS


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def setup(client: httpx.AsyncClient) -> str:
    r = await client.get("/api/auth/dev-login", params={"email": f"bench-{uuid.uuid4().hex[:8]}@example.com"})
    assert r.status_code == 302, r.text
    r = await client.post("/api/organisations", json={"name": "bench"})
    assert r.status_code == 201, r.text
    r = await client.post("/api/assets/", json={"key": "demo_ping"})
    assert r.status_code == 201, r.text
    asset = r.json()
    r = await client.post(
        "/api/jobs/", json={"name": "bench", "cron": "0 0 1 1 *", "enabled": False, "asset_ids": [asset["id"]]}
    )
    assert r.status_code == 200, r.text
    job_id: str = r.json()["id"]
    return job_id


async def queue_run(client: httpx.AsyncClient, job_id: str) -> str:
    r = await client.post(f"/api/jobs/{job_id}/run")
    assert r.status_code == 200, r.text
    run_id: str = r.json()["run_id"]
    return run_id


async def wait_done(db: asyncpg.Connection, ids: list[str], within: float) -> list[asyncpg.Record]:
    deadline = time.monotonic() + within
    wanted = [uuid.UUID(i) for i in ids]
    while True:
        rows: list[asyncpg.Record] = await db.fetch(
            "SELECT id, status, created_at, dispatched_at, started_at, completed_at FROM runs WHERE id = ANY($1)",
            wanted,
        )
        if all(r["status"] in ("success", "failed", "canceled") for r in rows) and len(rows) == len(wanted):
            return rows
        if time.monotonic() > deadline:
            waiting = sum(r["status"] not in ("success", "failed", "canceled") for r in rows)
            raise SystemExit(f"{waiting} runs not finished after {within:.0f} s")
        await asyncio.sleep(0.2)


async def pickup(client: httpx.AsyncClient, db: asyncpg.Connection, job_id: str, count: int) -> dict[str, float]:
    ids = []
    for _ in range(count):
        ids.append(await queue_run(client, job_id))
        await wait_done(db, ids[-1:], 30)  # the worker is idle when the next run is queued
    rows = await wait_done(db, ids, 60)
    pick = [(r["dispatched_at"] - r["created_at"]).total_seconds() * 1000 for r in rows]
    total = [(r["completed_at"] - r["created_at"]).total_seconds() * 1000 for r in rows]
    failed = sum(r["status"] != "success" for r in rows)
    return {
        "p50": statistics.median(pick),
        "p99": percentile(pick, 99),
        "max": max(pick),
        "done_p50": statistics.median(total),
        "done_p99": percentile(total, 99),
        "failed": failed,
    }


async def throughput(client: httpx.AsyncClient, db: asyncpg.Connection, job_id: str, count: int) -> dict[str, float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    ids: list[str] = []

    async def producer() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            ids.append(await queue_run(client, job_id))

    started = time.monotonic()
    await asyncio.gather(*(producer() for _ in range(16)))
    queued_in = time.monotonic() - started
    rows = await wait_done(db, ids, 600)
    first = min(r["created_at"] for r in rows)
    last = max(r["completed_at"] for r in rows)
    elapsed = (last - first).total_seconds()
    return {
        "runs": len(rows),
        "failed": sum(r["status"] != "success" for r in rows),
        "elapsed": elapsed,
        "per_minute": len(rows) / elapsed * 60,
        "queued_per_minute": len(rows) / queued_in * 60,
        "pick_p50": statistics.median((r["dispatched_at"] - r["created_at"]).total_seconds() * 1000 for r in rows),
    }


async def measure(base_url: str, dsn: str, pickups: int, burst: int, data_dir: Path | None = None) -> None:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        db = await asyncpg.connect(dsn)
        try:
            job_id = await setup(client)
            for _ in range(20):  # warm-up (pool children, connections)
                await queue_run(client, job_id)
            await asyncio.sleep(2)
            p = await pickup(client, db, job_id, pickups)
            print(
                f"pickup (queued -> dispatched), {pickups} runs one at a time: p50 {p['p50']:.1f} ms, "
                f"p99 {p['p99']:.1f} ms, max {p['max']:.1f} ms; queued -> success p50 {p['done_p50']:.1f} ms, "
                f"p99 {p['done_p99']:.1f} ms; failed {p['failed']:.0f}"
            )
            before = cpu_by_component(data_dir)
            t = await throughput(client, db, job_id, burst)
            after = cpu_by_component(data_dir)
            print(
                f"throughput, burst of {t['runs']:.0f} runs: {t['per_minute']:.0f} runs/min end to end "
                f"(first queued -> last success in {t['elapsed']:.1f} s; queued through the API at "
                f"{t['queued_per_minute']:.0f}/min; pickup p50 under load {t['pick_p50']:.0f} ms); "
                f"failed {t['failed']:.0f}"
            )
            if before and after:
                used = {name: (after[name] - before.get(name, 0.0)) * 1000 / t["runs"] for name in after}
                parts = ", ".join(
                    f"{name} {ms:.1f}" for name, ms in sorted(used.items(), key=lambda x: -x[1]) if ms >= 0.1
                )
                print(f"CPU per run during the burst (ms): {parts}; total {sum(used.values()):.1f}")
        finally:
            await db.close()


def _cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """CPU time of a process (and of its waited-for children), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_by_component(data_dir: Path | None) -> dict[str, float]:
    """CPU seconds used so far by each component of the stack (processes and their descendants)."""
    if data_dir is None or not (data_dir / "stack.json").exists():
        return {}
    info = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
    result = {}
    for name, comp in info["components"].items():
        if comp.get("pid"):
            pid = int(comp["pid"])
            result[name] = _cpu_seconds(pid) + sum(_cpu_seconds(d, with_children=False) for d in _descendants(pid))
    return result


def stack_addresses(data_dir: Path) -> tuple[str, str]:
    info = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
    pg = info["components"]["postgres"]
    user = pg.get("user", "postgres")
    # The local stack's superuser has a password (made once per data dir) since its service roles.
    passwords = data_dir / "postgres-passwords.json"
    password = json.loads(passwords.read_text(encoding="utf-8")).get(user) if passwords.exists() else None
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}" if password else quote(user, safe="")
    dsn = f"postgresql://{auth}@127.0.0.1:{pg['port']}/interloper_pipelines"
    return info["public_url"], dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="data dir of a running `interloper-stack up`")
    parser.add_argument("--pickups", type=int, default=200, help="runs queued one at a time (latency)")
    parser.add_argument("--burst", type=int, default=3000, help="runs queued at once (throughput)")
    parser.add_argument("--stack-args", default="--without agent", help="extra `interloper-stack up` arguments")
    args = parser.parse_args()
    if args.data_dir is not None:
        base_url, dsn = stack_addresses(args.data_dir)
        asyncio.run(measure(base_url, dsn, args.pickups, args.burst, args.data_dir))
        return

    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import start_stack, stop_stack_process

    os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))
    with tempfile.TemporaryDirectory(prefix="interloper-bench-") as tmp:
        base = Path(tmp)
        print("starting a private stack ...", file=sys.stderr)
        handle = start_stack(base / "data", free_port(), base / "stack.log", shlex.split(args.stack_args))
        try:
            base_url, dsn = stack_addresses(handle.data_dir)
            asyncio.run(measure(base_url, dsn, args.pickups, args.burst, handle.data_dir))
        finally:
            stop_stack_process(handle.process, check=False)


if __name__ == "__main__":
    main()
