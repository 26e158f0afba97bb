"""`make soak`: the benchmark's endpoint mix (bench.config.ENDPOINTS: health, me, sources,
assets, runs and run triggers) at a steady rate for a long time against a local stack. Reports
errors (must be 0), p50/p99 per interval, and the RSS of every process (with its children) after
the warm-up and at the end (growth must stay under 10 %). Exit status 1 on errors or growth.

    python -m bench.soak --minutes 10 --rate 40
    python -m bench.soak --attach <data dir> --minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from .config import ENDPOINTS, Endpoint
from .resources import MB
from .scenario import live_job

RSS_GROWTH_LIMIT = 0.10  # of private anonymous memory (RssAnon), per process tree


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def anon_bytes(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


def memory(pids: dict[str, int]) -> dict[str, tuple[float, float, int]]:
    """Each component's (RSS, anon) in MB and process count, its child processes included. Growth is judged on
    anon, the resident anonymous memory (heap, stacks: where a leak shows; Linux RssAnon, else
    USS). RSS also counts file and shared-memory pages as they are touched, and so does USS
    for a page only one process has touched: PostgreSQL's shared buffers, bounded by
    shared_buffers, counted as "unique" to whichever backend first read a new page."""
    out: dict[str, tuple[float, float, int]] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        rss = uss = 0.0
        for proc in procs:
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            rss, uss = rss + info.rss / MB, uss + (anon_bytes(proc.pid) or info.uss) / MB
        out[name] = (round(rss, 1), round(uss, 1), len(procs))
    return out


async def soak(base_url: str, data_dir: Path, args: argparse.Namespace) -> int:
    def pids() -> dict[str, int]:
        comps = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))["components"]
        return {name: int(c["pid"]) for name, c in comps.items() if c.get("pid")}

    windows: list[Window] = []
    errors: list[str] = []
    # One run trigger per `run_every` requests: the run mix without flooding the worker.
    mix: list[Endpoint] = [e for e in ENDPOINTS if e.name != "run"] * args.run_every
    mix.append(next(e for e in ENDPOINTS if e.name == "run"))
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        job_id = await live_job(client, "soak", seconds=0)

        async def one(endpoint: Endpoint, window: Window) -> None:
            started = time.monotonic()
            try:
                response = await client.request(
                    endpoint.method,
                    endpoint.path.format(job_id=job_id),
                    content=endpoint.body or None,
                    headers={"Content-Type": "application/json"} if endpoint.body else None,
                )
                ok = response.status_code < 400
                detail = f"{endpoint.label}: {response.status_code}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{endpoint.label}: {type(exc).__name__}"
            window.latencies.append((time.monotonic() - started) * 1000)
            if not ok:
                window.errors += 1
                errors.append(detail)

        total = args.warmup + args.minutes * 60
        start = time.monotonic()
        start_mem: dict[str, tuple[float, float, int]] = {}
        pending: set[asyncio.Task[None]] = set()
        sent = 0
        window = Window()
        window_end = start + args.interval
        while (now := time.monotonic()) < start + total:
            if not start_mem and now >= start + args.warmup:
                start_mem = await asyncio.to_thread(memory, pids())
            if now >= window_end:
                windows.append(window)
                print(
                    f"soak: t={now - start:5.0f}s requests={len(window.latencies)} errors={window.errors} "
                    f"p50={percentile(window.latencies, 50):.1f}ms p99={percentile(window.latencies, 99):.1f}ms",
                    file=sys.stderr,
                )
                window, window_end = Window(), window_end + args.interval
            task = asyncio.create_task(one(mix[sent % len(mix)], window))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / args.rate - time.monotonic()))  # steady rate
        if pending:
            await asyncio.wait(pending)
        windows.append(window)
    end_mem = memory(pids())
    growth = {
        name: (end_mem[name][1] - uss) / uss for name, (_, uss, _) in start_mem.items() if uss > 0 and name in end_mem
    }
    grown = {name: g for name, g in growth.items() if g > RSS_GROWTH_LIMIT}
    for name in sorted(start_mem):
        (rss0, uss0, n0), (rss1, uss1, n1) = start_mem[name], end_mem.get(name, (0.0, 0.0, 0))
        print(
            f"soak: memory {name:20s} rss {rss0:7.1f} -> {rss1:7.1f} MB  anon {uss0:7.1f} -> {uss1:7.1f} MB "
            f"({growth.get(name, 0.0):+.1%}) processes {n0} -> {n1}",
            file=sys.stderr,
        )
    for detail in errors[:20]:
        print(f"soak: ERROR {detail}", file=sys.stderr)
    requests = sum(len(w.latencies) for w in windows)
    figures: dict[str, Any] = {
        "minutes": args.minutes,
        "rate": args.rate,
        "requests": requests,
        "errors": len(errors),
        "p99_ms_per_interval": [round(percentile(w.latencies, 99), 1) for w in windows if w.latencies],
        "p99_ms": round(percentile([x for w in windows for x in w.latencies], 99), 1),
        "rss_mb_start_end": {name: [start_mem[name][0], end_mem.get(name, (0.0, 0.0, 0))[0]] for name in start_mem},
        "warmup_s": args.warmup,
        "anon_growth_max": f"{max(growth.values(), default=0.0):+.1%}",
        "anon_grown_over_10pct": sorted(grown),
    }
    verdict = "OK" if not errors and not grown else "FAILED"
    print(f"SOAK {verdict} " + json.dumps(figures, separators=(",", ":")))
    return 0 if verdict == "OK" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Steady load for a long time: errors, p99 over time, RSS growth.")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured duration (after the warm-up)")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of load before the starting RSS (pools fill)"
    )
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second (steady)")
    parser.add_argument("--run-every", type=int, default=5, help="one run trigger per this many rounds of reads")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per reported p99 interval")
    parser.add_argument("--attach", type=Path, help="data dir of a running stack (default: start one in a temp dir)")
    args = parser.parse_args(argv)
    if args.attach:
        info = json.loads((args.attach / "stack.json").read_text(encoding="utf-8"))
        return asyncio.run(soak(info["public_url"], args.attach, args))

    from icp_pipelines.demo import CATALOG_PATHS
    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import start_stack, stop_stack_process

    base = Path(tempfile.mkdtemp(prefix="interloper-soak-"))
    env = {**os.environ, "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS)}
    handle = start_stack(base / "data", free_port(), base / "stack.log", env=env)
    code = 1
    try:
        code = asyncio.run(soak(handle.base_url, handle.data_dir, args))
    finally:
        stop_stack_process(handle.process, check=False)
    if code == 0:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"soak: stack log and data kept in {base}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
