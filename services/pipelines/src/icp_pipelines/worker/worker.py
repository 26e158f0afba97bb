"""`interloper-pipelines worker`: claims queued runs and executes each in a child process.

* Woken through NATS: every run that becomes queued publishes `pipelines.runs.queued` (through the
  outbox); the worker then claims the oldest queued runs with `FOR UPDATE SKIP LOCKED` (queued ->
  dispatched -> running, both moves in the claim's transaction), at most `concurrency` at a time.
  A slow sweep (`poll_interval`) is only a safety net (NATS down, a message missed). Any number
  of workers on any number of machines can run.
* Each run: its components are hydrated from the database (spec 7.3, reads in autocommit mode) and
  sent to a child process of the pool, which runs the DAG with the configured interloper-core
  runner and reports the run's events; the worker stores them under the run's id (in batches,
  `event_flush_interval`) and ends the run (its backfill advances in the same transaction).
* In-flight runs heartbeat (`heartbeat_interval`); the scheduler's reaper fails runs whose
  heartbeat stops. A run canceled elsewhere (API, fail_fast, reaper) is detected through NATS
  (`pipelines.runs.cancel`) or at the next heartbeat/flush, and its child is killed.
* A database outage (server restart, lost connection) is ridden out: the run's writes (start,
  events, finish) and the heartbeats are retried with backoff for up to `db_outage_window`; the
  run keeps being heartbeated meanwhile, and its outcome is stored once the database is back
  (each write is idempotent, as its commit may have landed unseen). If the outage lasts longer,
  nothing is written: the reaper fails the run later. A wrong outcome is never stored instead.
* SIGTERM: no new claims; running runs get `shutdown_grace` to finish, then they are killed and
  failed ("Worker ... stopped during the run")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common import telemetry
from icp_common.contracts import ContractError, RunQueued
from icp_common.db import create_sessionmaker
from icp_common.resources import ServiceResources

from .. import commands
from ..catalog.loader import CatalogIndex
from ..crypto import Cipher
from ..db import is_outage, ride_out, with_retry
from ..execution import events, metrics, plan, repository
from ..execution.events import EventRow, RunRef
from ..execution.logs import RunLogs, exit_line, parse_timestamp
from ..execution.pool import Child, ChildError, ChildPool, RunProcessConfig, describe_exit, run_environment
from ..execution.protocol import RunMessage
from ..runs import lifecycle
from ..runs.status import STARTED, RunStatus
from ..settings import Settings

log = logging.getLogger(__name__)

MAX_BATCH = 500  # events stored in one statement at most
T = TypeVar("T")


@dataclass
class Execution:
    run: RunRef
    child: Child | None = None
    stop_reason: str | None = None  # set when the worker kills the run's child itself
    finishing: bool = False  # the child reported the end: nothing left to kill
    secrets: set[str] = field(default_factory=set)  # the run's decrypted secret values (masked in its logs)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def abort(self, reason: str) -> None:
        if self.finishing:
            return
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.child is not None:
            self.child.kill()


class Worker:
    def __init__(self, settings: Settings, resources: ServiceResources, catalog: CatalogIndex, cipher: Cipher) -> None:
        self.settings = settings
        self.config = settings.worker
        self.resources = resources
        self.catalog = catalog
        self.cipher = cipher
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.pool = ChildPool(
            self.config.concurrency,
            list(settings.catalog),
            max_runs=self.config.max_runs_per_child,
            start_timeout=self.config.child_start_timeout,
            config=RunProcessConfig(
                run_environment(os.environ, self.config.run_env), uid=self.config.run_uid, gid=self.config.run_gid
            ),
        )
        self.active: dict[uuid.UUID, Execution] = {}
        self.ready = False
        self._more = True  # queued runs may exist
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self.claimed = 0
        self.finished = 0
        # A claim failed (maybe after its COMMIT landed unseen): the next one looks for runs
        # dispatched to this worker that it does not know of. A fresh worker id has none.
        self._claim_unsure = False
        self._readers: async_sessionmaker[AsyncSession] | None = None
        # Run id -> the trace context its wake-up carried (when tracing): its execution continues it.
        self._traces: dict[uuid.UUID, dict[str, str]] = {}

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        assert self.resources.sessions is not None
        return self.resources.sessions

    @property
    def readers(self) -> async_sessionmaker[AsyncSession]:
        """Autocommit sessions for a run's plan (reads only): no BEGIN/COMMIT round trips, and each
        statement sees its own snapshot, as in the READ COMMITTED transaction it replaces."""
        if self._readers is None:
            assert self.resources.engine is not None
            self._readers = create_sessionmaker(self.resources.engine.execution_options(isolation_level="AUTOCOMMIT"))
        return self._readers

    async def _write(self, work: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A write of a run's lifecycle, retried through a database outage of up to `db_outage_window`."""
        return await ride_out(self.sessions, self.config.db_outage_window, work, *args, **kwargs)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from interloper.runner import build_runner

        try:
            build_runner(self.settings.runner.type, self.settings.runner.config)
        except ValueError as exc:
            raise SystemExit(f"INTERLOPER_RUNNER_TYPE: {exc}") from exc
        nc = self.resources.nc
        if nc is not None:
            self._subs.append(await nc.subscribe(commands.RUN_QUEUED, cb=self._on_queued))
            self._subs.append(await nc.subscribe(commands.RUN_CANCEL, cb=self._on_cancel))
        self._tasks.append(asyncio.create_task(self._warm_then_claim(), name="worker-claim"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"))
        log.info("worker %s started (concurrency %d)", self.id, self.config.concurrency)

    async def check_ready(self) -> bool:
        return self.ready

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        claim = self._tasks[0] if self._tasks else None
        if claim is not None:
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
        running = [e.task for e in self.active.values() if e.task is not None]
        if running:
            log.info("worker %s: waiting up to %.0f s for %d run(s)", self.id, self.config.shutdown_grace, len(running))
            _, pending = await asyncio.wait(running, timeout=self.config.shutdown_grace)
            if pending:
                for execution in list(self.active.values()):
                    execution.abort(f"Worker {self.id} stopped during the run")
                await asyncio.wait(pending, timeout=10)
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pool.close()
        log.info("worker %s stopped (%d runs claimed, %d finished)", self.id, self.claimed, self.finished)

    # -------------------------------------------------------------------------------- wake-ups

    async def _on_queued(self, msg: Msg) -> None:
        if telemetry.enabled() and msg.headers and telemetry.TRACEPARENT in msg.headers:
            self._remember_trace(msg)
        self._more = True
        self._wake.set()

    def _remember_trace(self, msg: Msg) -> None:
        """A consumer span for the wake-up; the run's execution becomes its child."""
        try:
            queued = RunQueued.decode(msg.data)
        except ContractError:
            return
        with telemetry.consumer_span("pipelines.runs.queued receive", msg.headers, run_id=queued.run_id):
            carrier: dict[str, str] = {}
            telemetry.inject(carrier)
        self._traces[queued.run_id] = carrier
        while len(self._traces) > 10_000:  # runs claimed by other workers are never popped here
            del self._traces[next(iter(self._traces))]

    async def _on_cancel(self, msg: Msg) -> None:
        for run_id in commands.parse_stop(msg.data):
            execution = self.active.get(run_id)
            if execution is not None:
                log.info("run %s was ended elsewhere: killing its process", run_id)
                execution.abort("canceled")

    # ---------------------------------------------------------------------------------- claim

    async def _warm_then_claim(self) -> None:
        await self.pool.warm()
        self.ready = True
        await self._claim_loop()

    async def _claim_loop(self) -> None:
        backoff = 0.2
        while not self._stopping:
            self._wake.clear()
            free = self.config.concurrency - len(self.active)
            if free > 0 and self._more:
                self._more = False
                try:
                    runs = await with_retry(self.sessions, self._claim, free)
                    backoff = 0.2
                    self._claim_unsure = False
                except Exception as exc:
                    log.warning("worker %s cannot claim runs (%s); retrying", self.id, exc)
                    self._more = True
                    self._claim_unsure = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for run in runs:
                    execution = Execution(run)
                    self.active[run.id] = execution
                    metrics.ACTIVE_RUNS.inc()
                    execution.task = asyncio.create_task(self._execute(execution), name=f"run-{run.id}")
                if len(runs) == free:
                    self._more = True
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            except TimeoutError:
                self._more = True  # the safety sweep

    async def _claim(self, session: AsyncSession, limit: int) -> list[RunRef]:
        # First the runs an earlier claim gave us unseen (its COMMIT landed, its answer was lost).
        unseen = (
            (await repository.dispatched_to(session, self.id, list(self.active)))[:limit] if self._claim_unsure else []
        )
        # Claimed and started in one transaction: this worker executes each of them right away.
        claimed = await lifecycle.claim_runs(session, self.id, limit - len(unseen), unseen)
        rows = [r for r in claimed if r.status == RunStatus.RUNNING]
        self.claimed += len(rows)
        metrics.RUNS_CLAIMED.inc(len(rows))
        for row in rows:
            if row.dispatched_at is not None:
                metrics.RUN_PICKUP.observe(max(0.0, (row.dispatched_at - row.created_at).total_seconds()))
        return [RunRef.of(r) for r in rows]

    # -------------------------------------------------------------------------------- execute

    async def _execute(self, execution: Execution) -> None:
        run = execution.run
        try:
            if telemetry.enabled():
                parent = self._traces.pop(run.id, None)
                with telemetry.span("run execute", parent, run_id=run.id, org_id=run.org_id, job_id=run.job_id):
                    await self._execute_run(execution)
            else:
                await self._execute_run(execution)
        except Exception as exc:
            if is_outage(exc):
                # The run's real outcome could not be stored: storing another one would be wrong.
                # Once the database is back and no heartbeat comes, the reaper fails the run.
                log.error(
                    "run %s: database unreachable for %gs, its outcome is lost (%s)",
                    run.id,
                    self.config.db_outage_window,
                    exc,
                )
                return
            log.exception("run %s: unexpected worker error", run.id)
            with contextlib.suppress(Exception):
                error = f"Worker error: {exc}"
                await self._write(
                    lifecycle.finish_run,
                    run,
                    status=RunStatus.FAILED,
                    failure=error,
                    interrupted="worker error",
                )
        finally:
            self.active.pop(run.id, None)
            metrics.ACTIVE_RUNS.dec()
            self.finished += 1
            self._wake.set()

    async def _execute_run(self, execution: Execution) -> None:
        run = execution.run
        specs = await ride_out(self.readers, self.config.db_outage_window, self._plan, run, execution.secrets)
        if isinstance(specs, str):
            await self._write(lifecycle.finish_run, run, status=RunStatus.FAILED, failure=specs)
            return
        if not specs:
            await self._write(lifecycle.finish_run, run, status=RunStatus.SUCCESS)
            return
        try:
            child = await self.pool.acquire(run.org_id)
        except ChildError as exc:
            error = f"Cannot start the run's process: {exc}"
            await self._write(lifecycle.finish_run, run, status=RunStatus.FAILED, failure=error)
            return
        execution.child = child
        try:
            if execution.stop_reason is not None:
                child.kill()
            await self._run_in_child(execution, child, specs)
        except BaseException:
            child.kill()  # it may still be executing the run (e.g. an outage outlasted the retries)
            raise
        finally:
            execution.child = None
            await self.pool.release(child)

    async def _plan(self, session: AsyncSession, run: RunRef, secrets: set[str]) -> list[dict[str, Any]] | str:
        """The run's components (reads only: the claim started it); a string = why it cannot run."""
        try:
            return await plan.build(session, self.catalog, self.cipher, run, self.settings.oauth, secrets)
        except plan.PlanError as exc:
            return str(exc)

    async def _run_in_child(self, execution: Execution, child: Child, specs: list[dict[str, Any]]) -> None:
        # The run's logs (its stdout/stderr pipes and `log` messages) are stored alongside.
        run_logs = RunLogs(execution.run, self.sessions, execution.secrets, max_bytes=self.config.run_log_max_bytes)
        child.begin_output(run_logs.sink)
        run_logs.start()
        try:
            await self._exchange(execution, child, specs, run_logs)
        finally:
            child.sink = None
            await run_logs.close()

    async def _exchange(
        self, execution: Execution, child: Child, specs: list[dict[str, Any]], run_logs: RunLogs
    ) -> None:
        run = execution.run
        message: RunMessage = {
            "t": "run",
            "run_id": str(run.id),
            "org_id": str(run.org_id),
            "backfill_id": str(run.backfill_id) if run.backfill_id else None,
            "partition": run.partition,
            "components": specs,
            "runner": {"type": self.settings.runner.type, "config": self.settings.runner.config},
        }
        if telemetry.enabled():
            message["traceparent"] = telemetry.current_traceparent()
        try:
            await child.send(message)
        except (OSError, ConnectionError):
            child.kill()
        buffer: list[EventRow] = []
        loop = asyncio.get_running_loop()
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - loop.time()) if buffer else None
            try:
                received = await asyncio.wait_for(child.receive(), timeout)
            except TimeoutError:
                stored = await self._write(lifecycle.record_events, run, buffer)
                buffer = []
                if not stored:
                    execution.abort("ended elsewhere")
                continue
            if received is None:  # the process is gone
                code = await child.wait()  # its output read to the end: the last lines are in
                await run_logs.close(exit_line(code))
                reason = execution.stop_reason or f"Run process exited unexpectedly ({describe_exit(code)})"
                await self._write(
                    lifecycle.finish_run,
                    run,
                    status=RunStatus.FAILED,
                    events_before=buffer,
                    failure=reason,
                    interrupted="run process ended",
                )
                return
            if received["t"] == "log":
                stamp = parse_timestamp(received["ts"])
                run_logs.add("logging", received["message"], asset=received["asset"], timestamp=stamp)
            elif received["t"] == "event":
                if not buffer:
                    deadline = loop.time() + self.config.event_flush_interval
                buffer.append(events.from_child(run, received))
                run_logs.event(received)
                if len(buffer) >= MAX_BATCH:
                    deadline = loop.time()
            elif received["t"] == "done":
                execution.finishing = True
                await child.settle_output()
                # Stored before the run's end is published; an error without event ends them.
                await run_logs.close(None if received["reported"] else received["error"])
                status = RunStatus(received["status"])
                failure = None
                if status == RunStatus.FAILED and not received["reported"]:
                    failure = received["error"] or "Run failed"
                ended = await self._write(
                    lifecycle.finish_run, run, status=status, events_before=buffer, failure=failure
                )
                if not ended:
                    log.info("run %s had already ended; its last events were dropped", run.id)
                return

    # ------------------------------------------------------------------------------ heartbeat

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            ids = list(self.active)
            if not ids:
                continue
            started = time.monotonic()
            try:
                # Retried for up to an interval: after an outage the heartbeat lands at once.
                current = await ride_out(self.sessions, self.config.heartbeat_interval, self._heartbeat, ids)
            except Exception as exc:
                log.warning("worker %s cannot heartbeat (%s)", self.id, exc)
                continue
            for run_id in ids:
                status = current.get(run_id, "deleted")
                execution = self.active.get(run_id)
                if execution is not None and status not in STARTED:
                    log.info("run %s is %s: killing its process", run_id, status)
                    execution.abort("ended elsewhere")
            log.debug("heartbeat of %d runs in %.1f ms", len(ids), (time.monotonic() - started) * 1000)

    async def _heartbeat(self, session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        await repository.heartbeat(session, ids)
        return await repository.statuses(session, ids)
