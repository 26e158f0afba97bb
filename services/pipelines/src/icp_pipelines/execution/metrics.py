"""Prometheus metrics of run execution (served by each process's `/metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common.metrics import SAMPLED, Probe

RUNS_CLAIMED = Counter("icp_pipelines_runs_claimed_total", "Queued runs claimed by this worker")
RUNS_FINISHED = Counter("icp_pipelines_runs_finished_total", "Runs this worker ended, by final status", ["status"])
RUN_PICKUP = Histogram(
    "icp_pipelines_run_pickup_seconds",
    "Queued -> dispatched (created_at to dispatched_at) of the runs this worker claimed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300),
)
ACTIVE_RUNS = Gauge("icp_pipelines_worker_active_runs", "Runs this worker is executing")
RUN_PROCESSES_STARTED = Counter("icp_pipelines_run_processes_started_total", "Run processes (children) started")
SCHEDULER_LEADER = Gauge("icp_pipelines_scheduler_leader", "1 while this scheduler replica is the leader")
CRON_TICKS = Counter("icp_pipelines_cron_ticks_total", "Cron ticks handled, by outcome", ["outcome"])
RUNS_REAPED = Counter("icp_pipelines_runs_reaped_total", "Runs failed by the reaper")
RUN_DURATION = Histogram(
    "icp_pipelines_run_duration_seconds",
    "Started (or dispatched) -> ended, of the runs this process ended, by final status",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600),
)

# The run queue, sampled by the scheduler (both queries use a partial index on the status).
QUEUE_DEPTH = SAMPLED.define("icp_pipelines_queued_runs", "gauge", "Runs queued, waiting for a worker", [])
QUEUE_AGE = SAMPLED.define(
    "icp_pipelines_oldest_queued_run_age_seconds", "gauge", "Age of the oldest queued run (0: none queued)", []
)
IN_FLIGHT = SAMPLED.define(
    "icp_pipelines_runs_in_flight", "gauge", "Runs a worker claimed, by status (dispatched, running)", ["status"]
)
OLDEST_IN_FLIGHT = SAMPLED.define(
    "icp_pipelines_oldest_run_in_flight_age_seconds",
    "gauge",
    "Seconds since the oldest dispatched or running run was dispatched (0: none): stuck runs",
    [],
)
_QUEUE = text("SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM runs WHERE status = 'queued'")
_IN_FLIGHT = text(
    "SELECT status, count(*), extract(epoch FROM now() - min(coalesce(dispatched_at, created_at)))"
    " FROM runs WHERE status IN ('dispatched', 'running') GROUP BY status"
)


def queue_probe(engine: Callable[[], AsyncEngine | None]) -> Probe:
    async def probe() -> None:
        current = engine()
        if current is None:
            return
        async with current.connect() as conn:
            depth, age = (await conn.execute(_QUEUE)).one()
            flying = {str(s): (int(n), float(a or 0)) for s, n, a in (await conn.execute(_IN_FLIGHT)).all()}
        SAMPLED.set(QUEUE_DEPTH, (), depth)
        SAMPLED.set(QUEUE_AGE, (), max(0.0, float(age or 0)))
        for status in ("dispatched", "running"):
            SAMPLED.set(IN_FLIGHT, (status,), flying.get(status, (0, 0.0))[0])
        SAMPLED.set(OLDEST_IN_FLIGHT, (), max((a for _, a in flying.values()), default=0.0))

    return probe


def observe_durations(rows: Iterable[Any], status: str) -> None:
    """Each ended run's duration from its start (or its dispatch, if it never started)."""
    for row in rows:
        begun = row.started_at or row.dispatched_at
        if begun is not None and row.completed_at is not None:
            RUN_DURATION.labels(status).observe(max(0.0, (row.completed_at - begun).total_seconds()))
