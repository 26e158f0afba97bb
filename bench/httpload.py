"""HTTP load: `wrk` (Debian's package) with bench/wrk/bench.lua, or, where wrk is not installed (the
smoke test on a fresh machine), a small asyncio/httpx generator with the same result shape."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

LUA = Path(__file__).resolve().parent / "wrk" / "bench.lua"
PERCENTILES = [*range(1, 100), 99.5, 99.9, 99.99, 100]


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    exe = wrk_binary()
    if exe is None:
        return ""
    import subprocess

    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else ""


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of one scenario as one: counts and durations add up exactly; each latency
    percentile is the request-weighted mean of the rounds' (an approximation of the percentile of
    the union, close when the rounds are alike)."""
    if len(parts) == 1:
        return parts[0]
    total = sum(p["requests"] for p in parts) or 1
    seconds = sum(p["seconds"] for p in parts)
    errors = {k: sum(p["errors"][k] for p in parts) for k in parts[0]["errors"]}
    statuses: dict[str, int] = {}
    for p in parts:
        for code, n in p.get("statuses", {}).items():
            statuses[code] = statuses.get(code, 0) + n
    pct = {k: sum(p["percentiles_ms"][k] * p["requests"] for p in parts) / total for k in parts[0]["percentiles_ms"]}
    requests = sum(p["requests"] for p in parts)
    return {
        "loadgen": parts[0]["loadgen"],
        "rounds": len(parts),
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round((requests - errors["status"]) / seconds, 1) if seconds else 0.0,
        "all_rps": round(requests / seconds, 1) if seconds else 0.0,
        "rounds_rps": [p["rps"] for p in parts],
        "statuses": statuses,
        "errors": errors,
        "error_count": sum(errors.values()),
        "p50_ms": pct.get("50"),
        "p90_ms": pct.get("90"),
        "p99_ms": pct.get("99"),
        "max_ms": max(p["max_ms"] for p in parts),
        "mean_ms": sum(p["mean_ms"] * p["requests"] for p in parts) / total,
        "percentiles_ms": pct,
    }


def summarise(raw: dict[str, Any], loadgen: str) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6 if raw["duration_us"] else 0.0
    pct = {str(k): v / 1000.0 for k, v in raw["latency_us"]["percentiles"].items()}
    errors = raw["errors"]
    ok = raw["requests"] - errors["status"]
    return {
        "loadgen": loadgen,
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(ok / seconds, 1) if seconds else 0.0,
        "all_rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "statuses": raw.get("statuses", {}),
        "errors": errors,
        "error_count": sum(errors.values()),
        "p50_ms": pct.get("50"),
        "p90_ms": pct.get("90"),
        "p99_ms": pct.get("99"),
        "max_ms": raw["latency_us"]["max"] / 1000.0,
        "mean_ms": raw["latency_us"]["mean"] / 1000.0,
        "percentiles_ms": pct,
    }


async def run_wrk(
    url: str,
    *,
    concurrency: int,
    duration: float,
    method: str = "GET",
    cookie: str = "",
    body: str = "",
    threads: int = 1,
) -> dict[str, Any]:
    exe = wrk_binary()
    if exe is None:
        return await run_python(
            url, concurrency=concurrency, duration=duration, method=method, cookie=cookie, body=body
        )
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, BENCH_COOKIE=cookie, BENCH_METHOD=method, BENCH_BODY=body, BENCH_OUT=str(out))
        argv = [
            exe,
            f"-t{max(1, min(threads, concurrency))}",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        stdout, _ = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {stdout.decode(errors='replace')[-500:]}")
        raw = json.loads(out.read_text())
    result = summarise(raw, "wrk")
    result["command"] = f"wrk -t{max(1, min(threads, concurrency))} -c{concurrency}"
    return result


async def run_python(
    url: str, *, concurrency: int, duration: float, method: str = "GET", cookie: str = "", body: str = ""
) -> dict[str, Any]:
    """Fallback load generator (closed loop, keep-alive): far slower than wrk; smoke runs only."""
    headers = {"Accept": "application/json"}
    if cookie:
        headers["Cookie"] = f"session_token={cookie}"
    content = body.encode() if body else None
    if body:
        headers["Content-Type"] = "application/json"
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    deadline = started + duration
    async with httpx.AsyncClient(timeout=10, limits=limits, headers=headers) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, url, content=content)
                except httpx.TimeoutException:
                    errors["timeout"] += 1
                    continue
                except httpx.HTTPError:
                    errors["read"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code >= 400:
                    errors["status"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def at(p: float) -> int:
        if not latencies:
            return 0
        index = min(len(latencies) - 1, max(0, round(p / 100 * len(latencies)) - 1))
        return int(latencies[index] * 1e6)

    raw = {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "bytes": 0,
        "errors": errors,
        "statuses": statuses,
        "latency_us": {
            "min": int(latencies[0] * 1e6) if latencies else 0,
            "max": int(latencies[-1] * 1e6) if latencies else 0,
            "mean": (sum(latencies) / len(latencies) * 1e6) if latencies else 0.0,
            "stdev": 0.0,
            "percentiles": {str(p): at(p) for p in PERCENTILES},
        },
    }
    return summarise(raw, "python")
