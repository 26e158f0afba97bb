"""Prometheus metrics of run execution (served by each process's `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
