"""Settings of run execution: workers, the scheduler (cron, reaper, backfills) and the runner.

Names follow the reference where it has one (spec 1.4: `INTERLOPER_WORKER_*`, `INTERLOPER_CRON_*`,
`INTERLOPER_REAPER_*`, `INTERLOPER_RUNNER_TYPE`, `INTERLOPER_RUNNER_CONFIG`); each group is also
accepted as one JSON variable (`INTERLOPER_RUNNER='{"type": "serial"}'`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RUNNER_TYPES = ("serial", "multi_thread", "multi_process", "docker", "k8s")


class WorkerSettings(BaseSettings):
    """`interloper-pipelines worker`: claims queued runs and executes each in a child process."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_WORKER_", extra="ignore")

    concurrency: int = Field(4, ge=1, le=256, description="Runs executed at the same time by one worker process")
    poll_interval: float = Field(
        15.0, gt=0, description="Safety sweep for queued runs (s); workers are woken through NATS, not by polling"
    )
    heartbeat_interval: float = Field(3.0, gt=0, description="How often a worker heartbeats its runs (s)")
    # A replacement costs ~0.4 s of CPU (Python, interloper-core and the catalog imported): at 200
    # that was ~2 ms per trivial run, at 1000 ~0.4 ms (issue 17); children belong to one organisation.
    max_runs_per_child: int = Field(
        1000,
        ge=0,
        description="Runs a pooled child process executes (one at a time) before it is replaced; "
        "1 = a fresh process for every run, 0 = no limit",
    )
    event_flush_interval: float = Field(
        0.1, gt=0, description="Longest time events of a running run wait before they are stored (s)"
    )
    run_log_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Stored output (logs) of one run, bytes; then one truncation line"
    )
    shutdown_grace: float = Field(10.0, ge=0, description="On SIGTERM, how long running runs may finish (s)")
    db_outage_window: float = Field(
        90.0,
        ge=0,
        description="How long a run's database writes (start, events, outcome) are retried through a database "
        "outage (s); the run keeps its heartbeat meanwhile, and its outcome is lost only after this",
    )
    child_start_timeout: float = Field(60.0, gt=0, description="Time a new child process has to become ready (s)")
    run_env: list[str] = Field(
        default_factory=list,
        description="Extra environment variables passed to run processes (JSON list), besides the allow-list "
        "(PATH, HOME, LANG/LC_*, TZ, PYTHON*, proxies, CA bundles, INTERLOPER_CATALOG/DATA_DIR/LOG_*)",
    )
    run_uid: int | None = Field(None, ge=0, description="Run processes drop to this uid (worker must be root)")
    run_gid: int | None = Field(None, ge=0, description="Run processes drop to this gid (worker must be root)")


class CronSettings(BaseSettings):
    """Cron reconcile of the scheduler (spec 6.4)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_CRON_", extra="ignore")

    enabled: bool = Field(True, description="Create runs/backfills of enabled jobs from their cron")
    reconcile_interval: float = Field(10.0, gt=0, description="Seconds between two looks at due jobs")
    max_execution_delay: float | None = Field(
        None,
        gt=0,
        description="A tick later than this (s) is skipped, not fired; default 10 x reconcile_interval (min 60 s)",
    )
    batch_size: int = Field(50, ge=1, description="Due jobs handled per transaction")

    @model_validator(mode="after")
    def _delay_covers_interval(self) -> CronSettings:
        if self.max_execution_delay is not None and self.max_execution_delay < self.reconcile_interval:
            raise ValueError("INTERLOPER_CRON_MAX_EXECUTION_DELAY must be >= INTERLOPER_CRON_RECONCILE_INTERVAL")
        return self

    @property
    def effective_max_delay(self) -> float:
        if self.max_execution_delay is not None:
            return self.max_execution_delay
        return max(60.0, 10 * self.reconcile_interval)


class ReaperSettings(BaseSettings):
    """The scheduler's reaper: fails runs whose worker is gone (spec 6.1, 12.2 #19)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_REAPER_", extra="ignore")

    enabled: bool = Field(True, description="Fail lost runs")
    poll_interval: float = Field(10.0, gt=0, description="Seconds between two sweeps (also advances stalled backfills)")
    heartbeat_timeout: float = Field(
        30.0, gt=0, description="A dispatched/running run without heartbeat for this long (s) is failed"
    )
    timeout: float = Field(
        600.0, gt=0, description="A run still 'dispatched' this long after its dispatch (s) is failed"
    )
    batch_size: int = Field(100, ge=1, description="Runs reaped per sweep")


class SchedulerSettings(BaseSettings):
    """`interloper-pipelines scheduler`: one active replica at a time (advisory-lock leader election)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_SCHEDULER_", extra="ignore")

    leader_retry_interval: float = Field(
        2.0, gt=0, description="How often a standby replica tries to become leader (s)"
    )
    leader_check_interval: float = Field(
        2.0, gt=0, description="How often the leader checks it still holds the lock (s)"
    )


class RunnerSettings(BaseSettings):
    """The interloper-core runner each run's DAG is executed with (spec 6.5)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_RUNNER_", extra="ignore")

    type: str = Field("multi_thread", description="serial, multi_thread, multi_process, docker or k8s")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description='Keyword arguments of the runner (JSON), e.g. {"max_workers": 4}; fail_fast defaults to true',
    )

    @model_validator(mode="after")
    def _known_type(self) -> RunnerSettings:
        if self.type not in RUNNER_TYPES:
            raise ValueError(f"INTERLOPER_RUNNER_TYPE must be one of {', '.join(RUNNER_TYPES)} (got {self.type!r})")
        return self
