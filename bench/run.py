"""`python -m bench run`: start both systems, seed them, run every scenario alternating between
them, write the JSON result and the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import psutil

from bench import execution, httpload, profiling, realtime
from bench import reference as refmod
from bench.config import CATALOG, ENDPOINTS, Endpoint, Profile
from bench.resources import Sampler
from bench.seed import Seeded, seed
from bench.targets import OursTarget, ReferenceTarget, Target

REPO = Path(__file__).resolve().parent.parent
PROFILED = ("me", "sources", "run", "run-api")  # requests profiled with py-spy (ours, c=32)


def log(message: str) -> None:
    print(f"bench {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class Bench:
    def __init__(self, profile: Profile, ours: OursTarget, ref: ReferenceTarget | None, sampler: Sampler) -> None:
        self.p = profile
        self.ours = ours
        self.ref = ref
        self.sampler = sampler
        self.targets: list[Target] = [t for t in (ours, ref) if t is not None]
        self.seeded: dict[str, Seeded] = {}
        self._bytes: dict[tuple[str, str], int] = {}
        self.work = Path(tempfile.gettempdir())
        self.deadline = time.monotonic() + profile.budget
        self.endpoints: set[str] = set()  # HTTP scenarios to run (empty: all)
        self.result: dict[str, Any] = {"http": {}, "realtime": {}, "execution": {}, "errors": [], "skipped": []}

    # ------------------------------------------------------------------ helpers

    def over_budget(self, what: str) -> bool:
        if time.monotonic() > self.deadline:
            self.result["skipped"].append(what)
            log(f"skipped (time budget): {what}")
            return True
        return False

    async def guarded(self, what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await fn()
        except Exception as exc:
            log(f"FAILED {what}: {exc!r}")
            trace = traceback.format_exc()[-2000:]
            self.result["errors"].append({"scenario": what, "error": repr(exc), "trace": trace})
            return None

    def order(self, i: int) -> list[Target]:
        """Alternate which system goes first, so drift of the machine's load hits both alike."""
        return self.targets if i % 2 == 0 else list(reversed(self.targets))

    def cpu_of(self, phase: str, group: str) -> dict[str, float]:
        cpu = self.sampler.phases.get(phase, {}).get("cpu_s", {})
        return {k.split("/", 1)[1]: v for k, v in cpu.items() if k.startswith(group + "/")}

    # ------------------------------------------------------------------ phases

    async def seed_all(self, work: Path) -> None:
        for t in self.targets:
            log(f"seeding {t.name}: {self.p.sources} sources, {self.p.runs} runs, {self.p.rt_orgs - 1} more orgs")
            started = time.monotonic()
            s = await seed(t, self.p.sources, self.p.runs, self.p.rt_orgs - 1, f"bench-{t.name}", self.p.jobs)
            self.seeded[t.name] = s
            took = round(time.monotonic() - started, 1)
            self.result.setdefault("seed", {})[t.name] = {**s.summary(), "seconds": took}
        # Our worker executes the seeded runs (the reference's API-only process leaves them queued).
        deadline = time.monotonic() + 180
        left = await self.ours.unfinished()
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            left = await self.ours.unfinished()
        self.result["seed"]["ours"]["unfinished_after_wait"] = left

    async def ceiling(self) -> None:
        info = self.ours.stack_info()["components"].get("traefik", {})
        url = info.get("ping_url")
        if not url or self.over_budget("ceiling"):
            return
        log(f"wrk ceiling against Traefik's /ping ({url})")
        res = await httpload.run_wrk(url, concurrency=32, duration=self.p.ceiling_duration)
        res.pop("percentiles_ms", None)
        self.result["ceiling"] = {"url": "traefik /ping (Go, no application code)", "concurrency": 32, **res}

    async def http(self) -> None:
        """Each (request, concurrency) in rounds ordered A B B A (two rounds) or A B, the first
        system alternating from one scenario to the next; rounds are merged (httpload.merge)."""
        i = 0
        for ep in ENDPOINTS:
            if self.endpoints and ep.name not in self.endpoints:
                continue
            for c in self.p.concurrencies:
                first = self.order(i)
                i += 1
                schedule = first + list(reversed(first)) if self.p.http_rounds == 2 else first
                parts: dict[str, list[dict[str, Any]]] = {t.name: [] for t in first}
                ready: dict[str, bool] = {}
                if ep.api_only:
                    await self.hold_workers()
                try:
                    await self.http_rounds(ep, c, schedule, parts, ready)
                finally:
                    if ep.api_only:
                        await self.release_workers()
                for name, rounds in parts.items():
                    if not rounds:
                        continue
                    merged = httpload.merge(rounds)
                    cpu: dict[str, float] = {}
                    for r in rounds:
                        for comp, v in r["cpu_s"].items():
                            cpu[comp] = round(cpu.get(comp, 0.0) + v, 3)
                    merged["cpu_s"] = cpu
                    merged["response_bytes"] = rounds[0]["response_bytes"]
                    self.result["http"].setdefault(ep.name, {}).setdefault(str(c), {})[name] = merged
                    log(
                        f"{ep.label:28} c={c:<3} {name:9} {merged['rps']:8.1f} req/s  p50 {merged['p50_ms']:.1f} ms  "
                        f"p99 {merged['p99_ms']:.1f} ms  errors {merged['error_count']}"
                    )

    async def http_rounds(
        self,
        ep: Endpoint,
        c: int,
        schedule: list[Target],
        parts: dict[str, list[dict[str, Any]]],
        ready: dict[str, bool],
    ) -> None:
        for k, t in enumerate(schedule):
            what = f"http {ep.name} c={c} {t.name}"
            if self.over_budget(what):
                continue
            if t.name not in ready:
                prepared = await self.guarded(what, lambda t=t: self.http_prepare(t, ep, c))
                ready[t.name] = bool(prepared)
            if not ready[t.name]:
                continue
            res = await self.guarded(what, lambda t=t, k=k: self.http_round(t, ep, c, k))
            if res is not None:
                parts[t.name].append(res)
            if ep.method != "GET":
                await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)

    async def hold_workers(self) -> None:
        """API-only scenarios: no run in flight, then every worker held off (`Target.hold_worker`)."""
        for t in self.targets:
            await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)
            t.hold_worker()

    async def release_workers(self) -> None:
        """The runs left queued are canceled first, so a released worker finds none to execute."""
        for t in self.targets:
            await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)
            t.release_worker()

    def _url(self, t: Target, ep: Endpoint) -> tuple[str, str]:
        s = self.seeded[t.name]
        return t.base_url + ep.path.format(job_id=s.job_id), (s.cookie if ep.auth else "")

    async def http_prepare(self, t: Target, ep: Endpoint, c: int) -> bool:
        """The request must succeed before it is timed; then a short warm-up at the same concurrency."""
        url, cookie = self._url(t, ep)
        headers = {"Cookie": f"session_token={cookie}"} if cookie else {}
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.request(ep.method, url, headers=headers, json={} if ep.body else None)
        if r.status_code != 200:
            raise RuntimeError(f"preflight {ep.label} on {t.name}: {r.status_code} {r.text[:200]}")
        self._bytes[(t.name, ep.name)] = len(r.content)
        if self.p.http_warmup:
            await httpload.run_wrk(
                url, concurrency=c, duration=self.p.http_warmup, method=ep.method, cookie=cookie, body=ep.body
            )
            if ep.method != "GET":
                await t.cancel_backlog()
        return True

    async def http_round(self, t: Target, ep: Endpoint, c: int, k: int) -> dict[str, Any]:
        url, cookie = self._url(t, ep)
        phase = f"http/{ep.name}/c{c}/{t.name}/r{k}"
        duration = self.p.http_duration / self.p.http_rounds
        with self.sampler.phase(phase):
            res = await httpload.run_wrk(
                url, concurrency=c, duration=duration, method=ep.method, cookie=cookie, body=ep.body
            )
        res["cpu_s"] = self.cpu_of(phase, t.name)
        res["response_bytes"] = self._bytes.get((t.name, ep.name))
        return res

    async def realtime(self) -> None:
        """Each socket count on both systems; ours twice: with our worker executing the runs, then
        (`ours-api`) with it held, as the reference's API executes nothing (the issue's comparison)."""
        per_org = max(1, self.p.rt_sockets // self.p.rt_orgs)
        modes = [("1", None), (str(self.p.rt_sockets), per_org)]
        for i, (label, n) in enumerate(modes):
            for t in self.order(i):
                await self.realtime_round(t, label, n, t.name)
                if t.name == "ours":
                    await self.hold_workers()
                    try:
                        await self.realtime_round(t, label, n, "ours-api")
                    finally:
                        await self.release_workers()

    async def realtime_round(self, t: Target, label: str, n: int | None, key: str) -> None:
        what = f"realtime {label} sockets {key}"
        if self.over_budget(what):
            return
        s = self.seeded[t.name]
        crowd = None
        if n is not None:
            crowd = [(s.cookie, n - 1)] + [(cookie, n) for cookie, _ in s.extra]
        phase = f"realtime/{label}/{key}"
        log(f"{what}: {self.p.rt_runs} runs")

        async def go() -> dict[str, Any]:
            with self.sampler.phase(phase):
                res = await realtime.latency(t, s.cookie, s.job_id, self.p.rt_runs, crowd=crowd, frame_wait=3.0)
            res["cpu_s"] = self.cpu_of(phase, t.name)
            return res

        res = await self.guarded(what, go)
        if res is not None:
            self.result["realtime"].setdefault(label, {})[key] = res
            log(f"  p50 {res['p50_ms']} ms  p99 {res['p99_ms']} ms  lost {res['lost']}  sockets {res['sockets']}")
        await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)

    async def execution(self, ref_proc: refmod.Reference | None) -> None:
        if self.over_budget("execution"):
            return
        if ref_proc is not None:
            log("starting the reference's worker (interloper app --no-api --worker)")
            try:
                ref_proc.start_worker()  # blocking, on the main thread: the child's parent-death signal follows it
            except Exception as exc:
                self.result["errors"].append({"scenario": "reference worker", "error": repr(exc)})
                ref_proc = None
        targets = [t for t in self.targets if t.name == "ours" or ref_proc is not None]
        for t in targets:
            await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)
        await asyncio.sleep(1.0)
        out = self.result["execution"]
        for t in targets:
            what = f"pickup {t.name}"
            if self.over_budget(what):
                continue
            s = self.seeded[t.name]
            n = self.p.pickup_runs_ours if t.name == "ours" else self.p.pickup_runs_reference
            log(f"{what}: up to {n} runs one at a time")
            res = await self.guarded(
                what,
                lambda t=t, s=s, n=n: execution.pickup(
                    t, s.cookie, s.job_id, n, budget=self.p.pickup_budget, per_run_timeout=20
                ),
            )
            if res is not None:
                out.setdefault("pickup", {})[t.name] = res
                log(f"  pickup p50 {res['p50_ms']} ms  p99 {res['p99_ms']} ms  ({res['count']} runs)")
        for t in reversed(targets):
            what = f"throughput {t.name}"
            if self.over_budget(what):
                continue
            s = self.seeded[t.name]
            n = self.p.burst_ours if t.name == "ours" else self.p.burst_reference
            log(f"{what}: burst of {n} runs")
            phase = f"execution/throughput/{t.name}"

            async def go(t: Target = t, s: Seeded = s, n: int = n, phase: str = phase) -> dict[str, Any]:
                with self.sampler.phase(phase):
                    res = await execution.throughput(t, s.cookie, s.job_id, n, within=self.p.burst_timeout)
                res["cpu_s"] = self.cpu_of(phase, t.name)
                return res

            res = await self.guarded(what, go)
            if res is not None:
                out.setdefault("throughput", {})[t.name] = res
                done = f"{res['finished']}/{res['runs']} finished, failed {res['failed']}"
                log(f"  {res['runs_per_min']} runs/min ({done})")
            await self.guarded(f"cancel backlog {t.name}", t.cancel_backlog)
        if ref_proc is not None:
            ref_proc.stop_worker()

    async def profile(self, out_dir: Path) -> None:
        """py-spy on our Python services during a few c=32 scenarios (after the measurements, so
        the sampling never disturbs a figure)."""
        if not self.p.profile_seconds:
            return
        if profiling.py_spy() is None:
            self.result["skipped"].append("profile (py-spy not installed)")
            return
        prof: dict[str, Any] = {}
        for ep in ENDPOINTS:
            if ep.name not in PROFILED or self.over_budget(f"profile {ep.name}"):
                continue
            if ep.api_only:
                await self.guarded("cancel backlog ours", self.ours.cancel_backlog)
                self.ours.hold_worker()
            try:
                prof[ep.name] = await self.guarded(f"profile {ep.name}", lambda ep=ep: self.profile_one(ep, out_dir))
            finally:
                if ep.method != "GET":
                    await self.guarded("cancel backlog ours", self.ours.cancel_backlog)
                self.ours.release_worker()
        if not self.over_budget("profile burst"):
            prof["burst"] = await self.guarded("profile burst", lambda: self.profile_burst(out_dir))
            await self.guarded("cancel backlog ours", self.ours.cancel_backlog)
        self.result["profile"] = {k: v for k, v in prof.items() if v}

    async def profile_burst(self, out_dir: Path) -> dict[str, Any]:
        """py-spy on the worker (its run processes included) and pipelines (its relay publishes
        the runs' messages) while trivial runs are posted by 16 clients and executed."""
        pids = self.ours.pids()
        s = self.seeded[self.ours.name]
        names = [n for n in ("pipelines-worker", "pipelines") if n in pids]
        seconds = self.p.profile_seconds
        log(f"py-spy on {', '.join(names)} during a burst of executed runs ({seconds:.0f} s)")
        stop, room = asyncio.Event(), asyncio.Event()

        async def gate() -> None:
            """A bounded backlog (≤ 64 unfinished runs): the worker, not the queue, is profiled."""
            conn = await asyncpg.connect(self.ours.dsn)
            try:
                while not stop.is_set():
                    left = await conn.fetchval(
                        "SELECT count(*) FROM runs WHERE status NOT IN ('success', 'failed', 'canceled')"
                    )
                    room.set() if left < 64 else room.clear()
                    await asyncio.sleep(0.1)
            finally:
                room.set()
                await conn.close()

        async def post() -> None:
            async with httpx.AsyncClient(
                base_url=self.ours.base_url, cookies={"session_token": s.cookie}, timeout=60
            ) as client:
                while not stop.is_set():
                    await room.wait()
                    await execution.post_run(client, s.job_id)

        posters = [asyncio.create_task(gate()), *(asyncio.create_task(post()) for _ in range(16))]
        await asyncio.sleep(0.5)
        try:
            recs = await asyncio.gather(
                *(
                    profiling.record(
                        pids[n], seconds, self.work / f"profile-burst-{n}.txt", subprocesses=n == "pipelines-worker"
                    )
                    for n in names
                ),
                return_exceptions=True,
            )
        finally:
            stop.set()
            await asyncio.gather(*posters, return_exceptions=True)
        out: dict[str, Any] = {"scenario": "a burst of executed trivial runs (ours)", "processes": {}}
        for n, rec in zip(names, recs, strict=True):
            if isinstance(rec, BaseException) or rec is None:
                out["processes"][n] = {"error": repr(rec)}
                continue
            svg = profiling.flamegraph_svg(rec, out_dir / f"flame-burst-{n}.svg", f"{n}: executed runs (py-spy)")
            out["processes"][n] = {**profiling.summarise(rec), "svg": svg.name}
        return out

    async def profile_one(self, ep: Endpoint, out_dir: Path) -> dict[str, Any]:
        pids = self.ours.pids()
        url, cookie = self._url(self.ours, ep)
        names = [n for n in ("gateway", "identity", "pipelines") if n in pids]
        log(f"py-spy on {', '.join(names)} during {ep.label} c=32 ({self.p.profile_seconds:.0f} s)")
        load = asyncio.create_task(
            httpload.run_wrk(
                url,
                concurrency=32,
                duration=self.p.profile_seconds + 2,
                method=ep.method,
                cookie=cookie,
                body=ep.body,
            )
        )
        await asyncio.sleep(0.5)
        recs = await asyncio.gather(
            *(
                profiling.record(pids[n], self.p.profile_seconds, self.work / f"profile-{ep.name}-{n}.txt")
                for n in names
            ),
            return_exceptions=True,
        )
        await load
        out: dict[str, Any] = {"scenario": f"{ep.label} c=32 (ours)", "processes": {}}
        for n, rec in zip(names, recs, strict=True):
            if isinstance(rec, BaseException) or rec is None:
                out["processes"][n] = {"error": repr(rec)}
                continue
            svg = profiling.flamegraph_svg(
                rec, out_dir / f"flame-{ep.name}-{n}.svg", f"{n}: {ep.label} at c=32 (py-spy, on-CPU)"
            )
            out["processes"][n] = {**profiling.summarise(rec), "svg": svg.name}
        return out


async def scenarios(bench: Bench, work: Path, out_dir: Path, only: set[str], ref_proc: refmod.Reference | None) -> None:
    res = bench.result
    bench.sampler.start()
    await asyncio.sleep(bench.p.settle)
    res["resources"] = {"idle_start": bench.sampler.snapshot()}
    await bench.seed_all(work)
    await asyncio.sleep(bench.p.settle)
    res["resources"]["idle"] = bench.sampler.snapshot()
    if "http" in only:
        await bench.guarded("ceiling", bench.ceiling)
        await bench.http()
    if "realtime" in only:
        await bench.realtime()
    if "execution" in only:
        await bench.execution(ref_proc)
    if "profile" in only:
        await bench.guarded("profile", lambda: bench.profile(out_dir))
    res["resources"]["end"] = bench.sampler.snapshot()
    res["resources"]["peak_rss_mb"] = {k: round(v, 1) for k, v in sorted(bench.sampler.peak_rss_mb.items())}
    res["resources"]["phases"] = bench.sampler.phases
    bench.sampler.stop()


def run(args: Any, profile: Profile) -> Path:
    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import start_stack, stop_stack_process

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = Path(args.out).resolve()
    out_dir = results_dir / f"{stamp}-{profile.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="interloper-bench-"))
    only = set(args.only.split(",")) if args.only else {"http", "realtime", "execution", "profile"}
    started = time.monotonic()
    catalog_json = json.dumps(CATALOG)
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "settings": profile.__dict__,
        "machine": machine(),
        "commit": git_commit(),
        "wrk": httpload.wrk_version() or "not installed (python load generator)",
    }
    log(f"work dir {work}; results {out_dir}")

    venv: dict[str, Any] = {}

    def build_venv() -> None:
        try:
            venv["bin"] = refmod.ensure_venv(Path(args.reference_venv), work / "reference-venv.log")
        except Exception as exc:
            venv["error"] = exc

    builder = None
    if not args.skip_reference:
        builder = threading.Thread(target=build_venv, name="reference-venv")
        builder.start()

    handle = None
    ref_proc: refmod.Reference | None = None
    ok = False
    try:
        if args.attach_stack:
            data_dir = Path(args.attach_stack)
        else:
            log("starting our stack (interloper-stack up)")
            env = dict(os.environ, INTERLOPER_CATALOG=catalog_json)
            stack_args = shlex.split(args.stack_args)
            if args.replicas:
                stack_args += ["--replicas", args.replicas]
            handle = start_stack(work / "ours", free_port(), work / "ours-stack.log", stack_args, env=env)
            data_dir = handle.data_dir
        info = json.loads((data_dir / "stack.json").read_text())
        meta["replicas"] = {name: len(names) for name, names in info.get("replicas", {}).items()}
        pg = info["components"]["postgres"]
        # As the pipelines service's own role (it owns `runs`): the stack's PostgreSQL needs its password.
        role = "interloper_pipelines"
        password = json.loads((data_dir / "postgres-passwords.json").read_text(encoding="utf-8"))[role]
        dsn = f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{pg['port']}/interloper_pipelines"
        ours = OursTarget("ours", info["public_url"], dsn, data_dir=data_dir)
        ref: ReferenceTarget | None = None
        if builder is not None:
            builder.join()
            if "error" in venv:
                raise venv["error"]
            meta["reference_versions"] = refmod.installed_versions(venv["bin"])
            log("starting the reference (embedded PostgreSQL + interloper app --api)")
            ref_proc = refmod.Reference(work / "reference", venv["bin"], catalog_json, profile.reference_worker_poll)
            ref_proc.start()
            ref = ReferenceTarget("reference", ref_proc.base_url, ref_proc.dsn, pid_source=ref_proc)
        sampler = Sampler()
        sampler.add("ours", ours.pids)
        if ref is not None:
            sampler.add("reference", ref.pids)
        sampler.add("bench", lambda: {"client": os.getpid()}, tree=False)
        bench = Bench(profile, ours, ref, sampler)
        bench.work = work
        bench.endpoints = {e for e in args.endpoints.split(",") if e}
        asyncio.run(scenarios(bench, work, out_dir, only, ref_proc))
        result = {"meta": meta, **bench.result}
        ok = True
    finally:
        if ref_proc is not None:
            ref_proc.stop()
        if handle is not None:
            stop_stack_process(handle.process, check=False)
        if ok and not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work dir kept: {work}")
    result["meta"]["seconds"] = round(time.monotonic() - started, 1)
    result["meta"]["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    json_path = results_dir / f"{stamp}-{profile.name}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    from bench import report

    report.render(result, out_dir, plots=not args.no_plots, json_name=json_path.name)
    log(f"done in {result['meta']['seconds']:.0f} s: {json_path} and {out_dir}/report.md")
    return json_path
