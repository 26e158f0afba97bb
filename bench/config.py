"""Scenario sizes: `full` (make bench, < 15 min on 2 cores) and `smoke` (make test, seconds)."""

from __future__ import annotations

from dataclasses import dataclass

from icp_pipelines.demo import CATALOG_PATHS

CATALOG = list(CATALOG_PATHS)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    auth: bool = True
    body: str = ""
    # Our worker held off (SIGSTOP) during the scenario, so only the API works, as the
    # reference's API process (it executes nothing): runs are left queued, then canceled.
    api_only: bool = False
    note: str = ""  # told apart in the report's label

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.note})" if self.note else "")


ENDPOINTS = [
    Endpoint("health", "GET", "/api/health", auth=False),
    Endpoint("me", "GET", "/api/auth/me"),
    Endpoint("sources", "GET", "/api/sources/"),
    Endpoint("assets", "GET", "/api/assets/"),
    Endpoint("runs", "GET", "/api/runs/?limit=50"),
    Endpoint("jobs", "GET", "/api/jobs/"),
    Endpoint("run", "POST", "/api/jobs/{job_id}/run", body="{}", note="worker executing"),
    Endpoint("run-api", "POST", "/api/jobs/{job_id}/run", body="{}", api_only=True, note="API only"),
]
AUTHENTICATED_READS = ("me", "sources", "assets", "runs", "jobs")


@dataclass(frozen=True)
class Profile:
    name: str
    sources: int = 20
    jobs: int = 20  # besides the benchmark's job: one per source (the first `jobs` sources)
    runs: int = 500
    concurrencies: tuple[int, ...] = (1, 32)
    http_duration: float = 8.0  # per system and scenario, split into `http_rounds` rounds
    http_rounds: int = 2  # 2 = A B B A
    http_warmup: float = 1.0
    ceiling_duration: float = 5.0
    rt_runs: int = 200
    rt_orgs: int = 10
    rt_sockets: int = 1000
    pickup_runs_ours: int = 50
    pickup_runs_reference: int = 12
    pickup_budget: float = 60.0
    burst_ours: int = 600
    burst_reference: int = 100
    burst_timeout: float = 120.0
    reference_worker_poll: int | None = None  # None = the reference's default (5 s; whole seconds)
    settle: float = 5.0
    profile_seconds: float = 10.0  # py-spy; 0 = off
    budget: float = 14 * 60.0  # wall clock; scenarios beyond it are skipped


FULL = Profile("full")
SMOKE = Profile(
    "smoke",
    sources=3,
    jobs=3,
    runs=20,
    concurrencies=(4,),
    http_duration=1.0,
    http_rounds=1,
    http_warmup=0.0,
    ceiling_duration=1.0,
    rt_runs=5,
    rt_orgs=2,
    rt_sockets=10,
    pickup_runs_ours=2,
    pickup_runs_reference=2,
    pickup_budget=10.0,
    burst_ours=8,
    burst_reference=4,
    burst_timeout=30.0,
    reference_worker_poll=1,
    settle=0.5,
    profile_seconds=0.0,
    budget=120.0,
)
PROFILES = {p.name: p for p in (FULL, SMOKE)}
