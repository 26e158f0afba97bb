"""`make soak`: the benchmark's endpoint mix (bench.config.ENDPOINTS: health, me, sources,
assets, runs and run triggers) at a steady rate for a long time against a local stack. Reports
errors (must be 0), p50/p99 per interval, and the memory of every component (a process and its
children) sampled every 10 s: the curve, and per process the median resident anonymous memory
of the first three minutes after the warm-up and of the last three (growth must stay under 10 % for
every process alive in both, and no component may end with more processes). Exit status 1 on
errors or growth.

The warm-up (6 minutes) brings every long-lived process to its steady state before the first
sample: nats-server's JetStream block buffer fills over ~5 minutes of run frames, and a
PostgreSQL backend fills its catalog and plan caches the first time it serves a statement. With
fixed LIFO pools the steady rate only ever uses the top few connections of a pool; the rest
would warm up during the measured phase, whenever load briefly peaks. So `--settle` seconds
before the warm-up ends, a burst sends every endpoint of the mix (reads and run triggers)
`--burst` requests at once (default 3 x the pool size), `--burst-rounds` times: every pooled
connection of every service, the worker's and the scheduler's too (a backlog of runs), serves
the mix's statements, and the run frames help fill nats. The steady load then goes on for
`--settle` seconds, so heaps that follow open connections (Traefik) come back before the start
window (a burst that ends late, on a loaded machine, moves the measured phase to `--settle`
seconds after it). The burst's errors count like any other; its latencies are reported apart.

Identity's pool serves little of the mix (the gateway caches sessions for a few seconds), so
the burst's first round also sends, `--burst` at once, its own reads (organisations, members,
invitations, audit, tokens) and requests that make the gateway ask identity: fresh sessions
(one per request) and an API token. At the end, the PostgreSQL backends that grew most are named
from `pg_stat_activity` (role, application, last statement), and a backend over the limit logs
its memory contexts (`pg_log_backend_memory_contexts`) to the stack's `logs/postgres.log`.

    python -m bench.soak --minutes 10 --rate 40
    python -m bench.soak --attach <data dir> --minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from icp_common.settings import PostgresSettings

from .config import ENDPOINTS, Endpoint
from .resources import MB
from .scenario import live_job

RSS_GROWTH_LIMIT = 0.10  # of resident anonymous memory (RssAnon), per process
# Identity's reads for the burst (module docstring), as the soak's admin.
IDENTITY_READS = (
    "/api/auth/me",
    "/api/organisations",
    "/api/organisations/members",
    "/api/organisations/invitations",
    "/api/audit?limit=50",
    "/api/tokens",
)


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


@dataclass
class Snapshot:
    """One component at one moment: its process tree's RSS and anon (MB), and each process's anon."""

    rss: float
    anon: float
    procs: dict[tuple[int, float], tuple[str, float]]  # (pid, create time) -> (name, anon MB)
    count: float = 0.0  # processes (a window's median: transient ones do not move it)


def memory(pids: dict[str, int]) -> dict[str, Snapshot]:
    """Each component's memory, its child processes included. Growth is judged on anon, the
    resident anonymous memory (heap, stacks: where a leak shows; Linux RssAnon, else USS). RSS
    also counts file and shared-memory pages as they are touched, and so does USS for a page
    only one process has touched: PostgreSQL's shared buffers, bounded by shared_buffers,
    counted as "unique" to whichever backend first read a new page."""
    out: dict[str, Snapshot] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        snap = Snapshot(0.0, 0.0, {})
        for proc in procs:
            try:
                info = proc.memory_full_info()
                # PostgreSQL titles its processes ("postgres: <user> <db> <client> idle"): the role.
                title = " ".join(proc.cmdline()[:1]).split()
                label = " ".join(title[:2]) if title and title[0] == "postgres:" else proc.name()
                if label.startswith("postgres:") and len(title) > 3 and "(" in title[3]:
                    label += " " + title[3]  # the client's address: whose pool (owners())
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            anon = (anon_bytes(proc.pid) or info.uss) / MB
            snap.rss, snap.anon = snap.rss + info.rss / MB, snap.anon + anon
            snap.procs[key] = (label, anon)
        snap.count = len(snap.procs)
        out[name] = snap
    return out


def owners(pids: dict[str, int]) -> dict[str, str]:
    """Client address "127.0.0.1(port)" -> the component whose process holds that socket."""
    tree: dict[int, str] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            tree.update({p.pid: name for p in [root, *root.children(recursive=True)]})
        except psutil.Error:
            continue
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return {}
    return {f"{c.laddr.ip}({c.laddr.port})": tree[c.pid] for c in conns if c.pid in tree and c.laddr}


def steady(samples: list[dict[str, Snapshot]]) -> dict[str, Snapshot]:
    """Each component over a window of samples: the medians of its totals, and of each process
    alive in every sample (a transient one, an overflow connection or an autovacuum worker, is
    left out). A garbage-collected heap (Go, Python) is a sawtooth, and one sample lands anywhere
    on it; the median of three minutes' samples is its level, which a leak raises all the same."""
    out: dict[str, Snapshot] = {}
    for name in set.intersection(*(set(sample) for sample in samples)) if samples else set():
        snaps = [sample[name] for sample in samples]
        keys = set.intersection(*(set(snap.procs) for snap in snaps))
        out[name] = Snapshot(
            round(statistics.median(snap.rss for snap in snaps), 1),
            round(statistics.median(snap.anon for snap in snaps), 1),
            {key: (snaps[0].procs[key][0], statistics.median(snap.procs[key][1] for snap in snaps)) for key in keys},
            statistics.median(snap.count for snap in snaps),
        )
    return out


def process_growth(start: Snapshot, end: Snapshot) -> tuple[float, str]:
    """The largest anon growth of one process alive at both points (PostgreSQL backends are
    processes of their own: a new pool connection is a new process, counted separately), and
    that process's name."""
    worst, who = 0.0, ""
    for key, (label, anon0) in start.procs.items():
        if key in end.procs and anon0 > 0:
            growth = (end.procs[key][1] - anon0) / anon0
            if growth > worst or not who:
                worst, who = growth, f"{label}[{key[0]}]"
    return worst, who


async def superuser(data_dir: Path) -> asyncpg.Connection:
    """A connection to the stack's PostgreSQL as its superuser."""
    info = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))["components"]["postgres"]
    password = json.loads((data_dir / "postgres-passwords.json").read_text(encoding="utf-8"))["postgres"]
    return await asyncpg.connect(
        host="127.0.0.1", port=int(info["port"]), user="postgres", password=password, database="postgres"
    )


async def checkpoint(data_dir: Path) -> None:
    """`CHECKPOINT` as the stack's superuser. PostgreSQL's checkpointer keeps an entry per relation
    it has written (its `smgr relation table`): run after the burst has dirtied every relation
    the mix writes, it brings that table to its steady size before the start window."""
    conn = await superuser(data_dir)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def backends(data_dir: Path, pids: list[int], log_contexts: list[int]) -> dict[int, str]:
    """Who each PostgreSQL backend is (role, application, type) and its last statement; the
    memory contexts of `log_contexts` go to the server log (the stack's logs/postgres.log)."""
    conn = await superuser(data_dir)
    try:
        for pid in log_contexts:
            await conn.execute("SELECT pg_log_backend_memory_contexts($1)", pid)
        rows = await conn.fetch(
            "SELECT pid, usename, application_name, backend_type, left(query, 160) AS query"
            " FROM pg_stat_activity WHERE pid = ANY($1::int[])",
            pids,
        )
    finally:
        await conn.close()
    return {
        row["pid"]: f"{row['usename'] or '-'} {row['application_name'] or '-'} {row['backend_type']}: "
        + " ".join((row["query"] or "").split())
        for row in rows
    }


async def soak(base_url: str, data_dir: Path, args: argparse.Namespace) -> int:
    def pids() -> dict[str, int]:
        comps = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))["components"]
        return {name: int(c["pid"]) for name, c in comps.items() if c.get("pid")}

    windows: list[Window] = []
    errors: list[str] = []
    burst_window = Window()
    burst_s = 0.0
    # One run trigger per `run_every` requests: the run mix without flooding the worker.
    mix: list[Endpoint] = [e for e in ENDPOINTS if e.method == "GET"] * args.run_every
    mix.append(next(e for e in ENDPOINTS if e.name == "run"))
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        job_id = await live_job(client, "soak", seconds=0)
        # Identity's pool in the burst (module docstring): an API token, and the caller's address
        # for a fresh session per request (a session the gateway has not cached yet).
        email = (await client.get("/api/auth/me")).json()["email"]
        created = await client.post("/api/tokens", json={"name": "soak", "role": "viewer"})
        assert created.status_code == 201, created.text
        bearer = {"Authorization": f"Bearer {created.json()['token']}"}

        async def one(endpoint: Endpoint, window: Window, headers: dict[str, str] | None = None) -> None:
            started = time.monotonic()
            try:
                response = await client.request(
                    endpoint.method,
                    endpoint.path.format(job_id=job_id),
                    content=endpoint.body or None,
                    headers={**({"Content-Type": "application/json"} if endpoint.body else {}), **(headers or {})},
                )
                ok = response.status_code < 400
                detail = f"{endpoint.label}: {response.status_code}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{endpoint.label}: {type(exc).__name__}"
            window.latencies.append((time.monotonic() - started) * 1000)
            if not ok:
                window.errors += 1
                errors.append(detail)

        # The measured phase starts `warmup` seconds in, or `settle` seconds after the burst and
        # its checkpoint if they end later (a loaded machine): never with the burst in its window.
        measure_from = args.warmup
        start = time.monotonic()
        born0 = time.time()  # process create times (psutil) are wall-clock
        samples: list[tuple[float, dict[str, Snapshot]]] = []  # every args.sample seconds: the curve

        async def sampler() -> None:
            while True:
                mem = await asyncio.to_thread(memory, pids())
                samples.append((time.monotonic() - start, mem))
                await asyncio.sleep(args.sample)

        async def fresh_session(window: Window) -> None:
            """Sign in anew, then one request: identity serves the sign-in and the gateway's
            first Authenticate of that session."""
            async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as fresh:
                started = time.monotonic()
                try:
                    signed = await fresh.get("/api/auth/dev-login", params={"email": email})
                    status = (await fresh.get("/api/auth/me")).status_code if signed.is_redirect else 0
                    ok, detail = status == 200, f"fresh session: {signed.status_code}/{status}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"fresh session: {type(exc).__name__}"
                window.latencies.append((time.monotonic() - started) * 1000)
                if not ok:
                    window.errors += 1
                    errors.append(detail)

        async def warm_identity(window: Window) -> None:
            """Identity's statements, `args.burst` at a time: more than its pool's connections."""
            await asyncio.gather(*(fresh_session(window) for _ in range(args.burst)))
            token_read = Endpoint("token", "GET", "/api/sources/")
            await asyncio.gather(*(one(token_read, window, bearer) for _ in range(args.burst)))
            for path in IDENTITY_READS:
                await asyncio.gather(*(one(Endpoint("identity", "GET", path), window) for _ in range(args.burst)))

        async def burst() -> None:
            """Every endpoint of the mix `args.burst` at a time, `args.burst_rounds` times: more
            requests in flight at each service than its pool has connections (module docstring)."""
            nonlocal burst_s, measure_from
            began = time.monotonic()
            for round_ in range(args.burst_rounds):
                if round_ == 0:  # once: a backend fills its caches the first time
                    await warm_identity(burst_window)
                for endpoint in ENDPOINTS:
                    if endpoint.api_only:
                        continue  # the same request as "run" (the soak never holds the worker)
                    await asyncio.gather(*(one(endpoint, burst_window) for _ in range(args.burst)))
            burst_s = time.monotonic() - began
            await checkpoint(data_dir)  # every relation the burst dirtied, written once
            measure_from = max(measure_from, time.monotonic() - start + args.settle)
            print(
                f"soak: warm-up burst done at t={time.monotonic() - start:.0f}s in {burst_s:.0f}s: "
                f"requests={len(burst_window.latencies)} errors={burst_window.errors} "
                f"p99={percentile(burst_window.latencies, 99):.1f}ms",
                file=sys.stderr,
            )

        sampling = asyncio.create_task(sampler())
        burst_at = start + max(0.0, args.warmup - args.settle) if args.burst > 0 else float("inf")
        pending: set[asyncio.Task[None]] = set()
        # Once more just before the start window: relations first written since (autovacuum's).
        checkpointed = args.burst <= 0
        sent = 0
        window = Window()
        window_end = start + args.interval
        while (now := time.monotonic()) < start + measure_from + args.minutes * 60:
            if now >= window_end:
                windows.append(window)
                mem = samples[-1][1] if samples else {}
                print(
                    f"soak: t={now - start:5.0f}s requests={len(window.latencies)} errors={window.errors} "
                    f"p50={percentile(window.latencies, 50):.1f}ms p99={percentile(window.latencies, 99):.1f}ms "
                    "anon MB/processes " + " ".join(f"{n}={m.anon:.1f}/{len(m.procs)}" for n, m in sorted(mem.items())),
                    file=sys.stderr,
                )
                window, window_end = Window(), window_end + args.interval
            burst_over = burst_at == float("inf") and not any(t.get_name() == "burst" for t in pending)
            if not checkpointed and burst_over and now >= start + measure_from - 30.0:
                checkpointed = True
                checkpointing = asyncio.create_task(checkpoint(data_dir))
                pending.add(checkpointing)
                checkpointing.add_done_callback(pending.discard)
            if now >= burst_at:
                burst_at = float("inf")
                print(f"soak: warm-up burst at t={now - start:.0f}s, concurrency {args.burst}", file=sys.stderr)
                bursting = asyncio.create_task(burst(), name="burst")
                pending.add(bursting)
                bursting.add_done_callback(pending.discard)
            task = asyncio.create_task(one(mix[sent % len(mix)], window))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / args.rate - time.monotonic()))  # steady rate
        sampling.cancel()
        if pending:
            await asyncio.wait(pending)
        windows.append(window)
    samples.append((time.monotonic() - start, memory(pids())))
    # Start: the first `window` seconds after the warm-up; end: the last `window` seconds.
    total = measure_from + args.minutes * 60
    start_mem = steady([m for t, m in samples if measure_from <= t < measure_from + args.window])
    end_mem = steady([m for t, m in samples if t >= total - args.window])
    # Judged per process (the "per process"): each process alive through both windows must
    # not grow its anon by more than the limit, and no component may end with more processes (the
    # windows' median count: a pool that opened new backends, a leaked child). Totals are reported.
    growth = {name: process_growth(snap, end_mem[name]) for name, snap in start_mem.items() if name in end_mem}
    total_growth = {
        name: (end_mem[name].anon - snap.anon) / snap.anon
        for name, snap in start_mem.items()
        if snap.anon > 0 and name in end_mem
    }
    grown = {name for name, (g, _) in growth.items() if g > RSS_GROWTH_LIMIT}
    multiplied = {name for name, snap in start_mem.items() if name in end_mem and end_mem[name].count > snap.count}
    for name in sorted(start_mem):
        s0 = start_mem[name]
        s1 = end_mem.get(name, Snapshot(0.0, 0.0, {}))
        worst, who = growth.get(name, (0.0, ""))
        print(
            f"soak: memory {name:20s} rss {s0.rss:7.1f} -> {s1.rss:7.1f} MB  anon {s0.anon:7.1f} -> {s1.anon:7.1f} MB "
            f"({total_growth.get(name, 0.0):+.1%}) processes {s0.count:g} -> {s1.count:g}  "
            f"largest per-process growth {worst:+.1%} {who}",
            file=sys.stderr,
        )
    whose = owners(pids())
    if "postgres" in start_mem and "postgres" in end_mem:  # its backends: who, and what they ran last
        s0, s1 = start_mem["postgres"], end_mem["postgres"]
        over = [
            k[0]
            for k, (_, a0) in s0.procs.items()
            if k in s1.procs and a0 > 0 and s1.procs[k][1] > a0 * (1 + RSS_GROWTH_LIMIT)
        ]
        try:
            activity = await backends(data_dir, [k[0] for k in s0.procs], over)
        except (OSError, asyncpg.PostgresError) as exc:
            activity = {}
            print(f"soak: pg_stat_activity not read: {exc}", file=sys.stderr)
        if over:
            logged = data_dir / "logs" / "postgres.log"
            print(f"soak: memory contexts of {over} logged to {logged}", file=sys.stderr)
    else:
        activity = {}
    for name in sorted(start_mem):  # the processes that grew most, in MB
        s0, s1 = start_mem[name], end_mem.get(name, Snapshot(0.0, 0.0, {}))
        moved = sorted(
            (
                (s1.procs[k][1] - a0, label, k[0], a0, s1.procs[k][1], k[1] - born0)
                for k, (label, a0) in s0.procs.items()
                if k in s1.procs
            ),
            reverse=True,
        )
        if len(s0.procs) > 1:
            for delta, label, pid, a0, a1, born in moved[:3]:
                owner = next((f" (of {o})" for addr, o in whose.items() if label.endswith(" " + addr)), "")
                print(
                    f"soak:   {name} {label}[{pid}]{owner} started t={born:.0f}s anon {a0:.2f} -> {a1:.2f} MB "
                    f"({delta:+.2f})" + (f"  [{activity[pid]}]" if pid in activity else ""),
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
        "burst": {
            "concurrency": args.burst,
            "rounds": args.burst_rounds,
            "requests": len(burst_window.latencies),
            "errors": burst_window.errors,
            "p99_ms": round(percentile(burst_window.latencies, 99), 1),
            "seconds": round(burst_s),
        },
        "rss_mb_start_end": {
            name: [snap.rss, end_mem[name].rss] for name, snap in start_mem.items() if name in end_mem
        },
        "anon_mb_curve": {
            name: [round(mem[name].anon, 1) if name in mem else None for _, mem in samples] for name in start_mem
        },
        "curve_s": [round(t) for t, _ in samples],
        "warmup_s": round(measure_from),
        "settle_s": args.settle,
        "window_s": args.window,
        "anon_growth_per_process_max": f"{max((g for g, _ in growth.values()), default=0.0):+.1%}",
        "anon_growth_total_max": f"{max(total_growth.values(), default=0.0):+.1%}",
        "processes_start_end": {
            name: [snap.count, end_mem[name].count] for name, snap in start_mem.items() if name in end_mem
        },
        "anon_grown_over_10pct": sorted(grown),
        "processes_grew": sorted(multiplied),
    }
    verdict = "OK" if not errors and not grown and not multiplied else "FAILED"
    print(f"SOAK {verdict} " + json.dumps(figures, separators=(",", ":")))
    return 0 if verdict == "OK" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Steady load for a long time: errors, p99 over time, RSS growth.")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured duration (after the warm-up)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=360.0,
        help="seconds of load before the start window (nats-server's block buffer fills in ~5 minutes)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=3 * PostgresSettings().pool_size,
        help="requests at once per endpoint in the warm-up's burst (above every pool's size); 0 = none",
    )
    parser.add_argument("--burst-rounds", type=int, default=3, help="rounds of the burst over every endpoint")
    parser.add_argument(
        "--settle", type=float, default=120.0, help="seconds of steady load between the burst and the start window"
    )
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second (steady)")
    parser.add_argument("--run-every", type=int, default=5, help="one run trigger per this many rounds of reads")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per reported p99 interval")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples (the curve)")
    parser.add_argument(
        "--window",
        type=float,
        default=180.0,
        help="seconds of samples whose median is the start and the end figure (18 samples: a minute's 6 "
        "caught nats-server's Go heap in one scavenged dip, -1.5 MB, and read a sawtooth as growth)",
    )
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
