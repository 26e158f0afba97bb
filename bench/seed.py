"""Identical data in both systems, through their public APIs only (the same requests to both):
an organisation, a config resource and a CSV destination, N demo sources bound to both (4 assets
each), one standalone asset `demo_ping`, a job over it, and M runs of that job; plus a few more
users, each with an organisation of their own, for the many-sockets scenario."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.targets import Target


@dataclass
class Seeded:
    cookie: str
    org_id: str
    job_id: str
    source_ids: list[str]
    asset_count: int
    run_ids: list[str]
    job_count: int = 1
    extra: list[tuple[str, str]] = field(default_factory=list)  # (cookie, org id) of the other orgs

    def summary(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "job_id": self.job_id,
            "sources": len(self.source_ids),
            "assets": self.asset_count,
            "jobs": self.job_count,
            "runs": len(self.run_ids),
            "other_orgs": len(self.extra),
        }


def _ok(r: httpx.Response, *codes: int) -> Any:
    if r.status_code not in codes:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json()


async def new_org(target: Target, email: str, name: str) -> tuple[str, str]:
    cookie = await target.new_session(email)
    async with httpx.AsyncClient(base_url=target.base_url, cookies={"session_token": cookie}, timeout=60) as c:
        org = _ok(await c.post("/api/organisations", json={"name": name}), 201)
    target.org_ids.append(str(org["id"]))
    return cookie, str(org["id"])


async def seed(target: Target, sources: int, runs: int, other_orgs: int, base_path: str, jobs: int = 0) -> Seeded:
    """``jobs``: more disabled jobs, each over one source (the job list's rows). ``base_path``:
    relative, the Demo CSV destination's folder inside the organisation's demo
    output directory (``<data dir>/demo-output/<org id>/``; an absolute path is refused with 422)."""
    tag = uuid.uuid4().hex[:8]
    cookie, org_id = await new_org(target, f"bench-{tag}@example.com", f"bench {tag}")
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        base_url=target.base_url, cookies={"session_token": cookie}, timeout=60, limits=limits
    ) as c:
        resource = _ok(
            await c.post(
                "/api/resources/",
                json={
                    "kind": "config",
                    "key": "demo_config",
                    "name": "bench config",
                    "data": {"greeting": "hi", "rows_per_day": 5},
                },
            ),
            200,
        )
        destination = _ok(
            await c.post(
                "/api/destinations/",
                json={"key": "demo_csv_destination", "name": "bench csv", "config": {"base_path": base_path}},
            ),
            200,
        )
        source_ids = []
        for i in range(sources):
            body = {
                "key": "demo_source",
                "name": f"source {i:02d}",
                "config": {"region": "eu"},
                "resources": {"config": resource["id"]},
                "destination_ids": [destination["id"]],
            }
            source_ids.append(str(_ok(await c.post("/api/sources/", json=body), 200)["id"]))
        ping = _ok(await c.post("/api/assets/", json={"key": "demo_ping"}), 201)
        job = _ok(
            await c.post(
                "/api/jobs/", json={"name": "bench", "cron": "0 0 1 1 *", "enabled": False, "asset_ids": [ping["id"]]}
            ),
            200,
        )
        job_id = str(job["id"])
        for i, source_id in enumerate(source_ids[:jobs]):
            body = {"name": f"job {i:02d}", "cron": "0 0 1 1 *", "enabled": False, "source_ids": [source_id]}
            _ok(await c.post("/api/jobs/", json=body), 200)
        sem = asyncio.Semaphore(8)

        async def one() -> str:
            async with sem:
                return str(_ok(await c.post(f"/api/jobs/{job_id}/run"), 200)["run_id"])

        run_ids = list(await asyncio.gather(*(one() for _ in range(runs))))
        assets = _ok(await c.get("/api/assets/"), 200)
    extra = []
    for i in range(other_orgs):
        extra.append(await new_org(target, f"bench-{tag}-{i}@example.com", f"bench {tag} {i}"))
    return Seeded(cookie, org_id, job_id, source_ids, len(assets), run_ids, 1 + min(jobs, sources), extra)
