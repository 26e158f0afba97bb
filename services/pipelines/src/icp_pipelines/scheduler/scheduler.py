"""`interloper-pipelines scheduler`: while it is the leader (advisory lock, see `leader`), it runs

* cron reconcile (spec 6.4), every `INTERLOPER_CRON_RECONCILE_INTERVAL` s: due jobs are locked
  with `FOR UPDATE SKIP LOCKED` (a tick is fired once, whatever the number of schedulers), each in
  a savepoint of its own (an invalid cron never blocks the other jobs), `next_run_at` from the
  job's current expression, `last_run_at` written; a tick older than `max_execution_delay` is
  skipped; partitioned jobs with `backfill_days` get a backfill of the last days (concurrency 1,
  respected), the others one run;
* the reaper, every `INTERLOPER_REAPER_POLL_INTERVAL` s (and at once on becoming leader): fails
  runs whose heartbeat stopped or that stay dispatched too long, with a `run_failed` event
  saying why, and advances their backfills;
* the backfill sweep (same interval): advances active backfills with a free slot, which finishes
  them or promotes their pending runs if anything was missed;
* the stuck-run sweep (same interval): a `pipelines.alerts.run_stuck` event for each run running
  past one of the thresholds of `icp_common.contracts.STUCK_MINUTES` (failure alerts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.db import unit_of_work
from icp_common.resources import ServiceResources

from ..db import with_retry
from ..execution import metrics, repository
from ..jobs import repository as jobs_repository
from ..jobs import service as jobs_service
from ..jobs.models import Job
from ..runs import alerts as run_alerts
from ..runs import lifecycle
from ..settings import Settings
from .leader import LeaderElection

log = logging.getLogger(__name__)

# A job of the leader: (interval in seconds, the pass itself, its name for the log).
LeaderJob = tuple[float, Callable[[], Awaitable[int]], str]


class Scheduler:
    def __init__(self, settings: Settings, resources: ServiceResources) -> None:
        self.settings = settings
        self.resources = resources
        assert resources.engine is not None
        self.election = LeaderElection(
            resources.engine,
            self._lead,
            retry_interval=settings.scheduler.leader_retry_interval,
            check_interval=settings.scheduler.leader_check_interval,
        )
        self._task: asyncio.Task[None] | None = None
        self.fired = 0
        self.reaped = 0

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        assert self.resources.sessions is not None
        return self.resources.sessions

    async def start(self) -> None:
        self._task = asyncio.create_task(self.election.run(), name="scheduler-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_ready(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _lead(self) -> None:
        jobs: list[LeaderJob] = []
        if self.settings.cron.enabled:
            jobs.append((self.settings.cron.reconcile_interval, self.reconcile_cron, "cron"))
        if self.settings.reaper.enabled:
            jobs.append((self.settings.reaper.poll_interval, self.reap, "reaper"))
        jobs.append((self.settings.reaper.poll_interval, self.sweep_backfills, "backfill sweep"))
        jobs.append((self.settings.reaper.poll_interval, self.sweep_stuck_runs, "stuck-run sweep"))
        await self._one_after_another(jobs)

    @staticmethod
    async def _one_after_another(jobs: list[LeaderJob]) -> None:
        """Each job every `interval` s, one at a time in this task: they need one pooled connection
        between them. (As concurrent loops with the same interval they overlapped on every tick and
        spread over the pool's spare connections; a PostgreSQL backend running a statement for the
        first time fills its caches, and `make soak` saw the scheduler's backends grow that way.)"""
        clock = asyncio.get_running_loop().time
        due = [clock()] * len(jobs)
        while True:
            for index, (interval, job, name) in enumerate(jobs):
                if clock() < due[index]:
                    continue
                try:
                    await job()
                except Exception:
                    log.exception("scheduler %s failed; retrying in %.1f s", name, interval)
                due[index] = clock() + interval
            await asyncio.sleep(max(0.0, min(due) - clock()))

    # -------------------------------------------------------------------------------- cron

    async def reconcile_cron(self) -> int:
        """One pass over due jobs (several batches if needed); returns the ticks fired."""
        fired = 0
        while True:
            batch, count = await with_retry(self.sessions, self._cron_batch)
            fired += count
            if batch < self.settings.cron.batch_size:
                return fired

    async def _cron_batch(self, session: AsyncSession) -> tuple[int, int]:
        now = datetime.now(UTC)
        jobs = await repository.due_jobs(session, now, self.settings.cron.batch_size)
        fired = 0
        for job in jobs:
            try:
                async with session.begin_nested():
                    fired += await self._tick(session, job, now)
            except Exception as exc:
                log.warning("cron of job %s (%r) failed: %s", job.id, job.cron, exc)
                metrics.CRON_TICKS.labels("error").inc()
                async with session.begin_nested():
                    job.next_run_at = None  # behind every valid due job until its cron is fixed
                    await session.flush()
        self.fired += fired
        # Jobs whose invalid cron left them unscheduled are not counted, so they never loop.
        return sum(1 for j in jobs if j.next_run_at is not None), fired

    async def _tick(self, session: AsyncSession, job: Job, now: datetime) -> int:
        jobs_service.validate_cron(job.cron)
        following = jobs_service.next_run(job.cron, now)
        due, job.next_run_at = job.next_run_at, following
        if due is None:
            await session.flush()
            return 0
        late = (now - due).total_seconds()
        if late > self.settings.cron.effective_max_delay:
            log.warning("job %s: tick of %s skipped (%.0f s late); next at %s", job.id, due, late, following)
            metrics.CRON_TICKS.labels("skipped").inc()
            await session.flush()
            return 0
        await session.flush()
        if job.partitioned and job.backfill_days:
            today = now.date()
            await lifecycle.create_backfill(
                session,
                job.org_id,
                job.id,
                start_date=today - timedelta(days=job.backfill_days),
                end_date=today - timedelta(days=1),
            )
        else:
            await lifecycle.queue_run(session, job.org_id, job.id, None)
        await jobs_repository.mark_run(session, job.org_id, job.id)
        log.info("job %s: tick of %s fired; next at %s", job.id, due, following)
        metrics.CRON_TICKS.labels("fired").inc()
        return 1

    # ------------------------------------------------------------------------------ reaper

    async def reap(self) -> int:
        reaper = self.settings.reaper
        async with unit_of_work(self.sessions) as session:
            lost = await repository.lost_runs(
                session,
                heartbeat_timeout=reaper.heartbeat_timeout,
                dispatch_timeout=reaper.timeout,
                limit=reaper.batch_size,
            )
        count = 0
        for candidate in lost:
            if await with_retry(self.sessions, lifecycle.reap_run, candidate):
                log.warning("run %s failed by the reaper: %s", candidate.id, candidate.reason)
                metrics.RUNS_REAPED.inc()
                count += 1
        self.reaped += count
        return count

    # ------------------------------------------------------------------------ stuck runs

    async def sweep_stuck_runs(self) -> int:
        # Three sweeps' worth of window: a slow or missed sweep still sees the crossing.
        window = timedelta(seconds=max(3 * self.settings.reaper.poll_interval, 60))
        async with unit_of_work(self.sessions) as session:
            return await run_alerts.stuck_runs(session, datetime.now(UTC), window)

    # ------------------------------------------------------------------------ backfill sweep

    async def sweep_backfills(self) -> int:
        async with unit_of_work(self.sessions) as session:
            candidates = await repository.stalled_backfills(session, 100)
        for backfill_id, _ in candidates:
            await with_retry(self.sessions, lifecycle.advance_backfill_by_id, backfill_id)
        return len(candidates)
