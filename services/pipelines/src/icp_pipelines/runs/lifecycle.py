"""The life of a run (spec 6.1-6.3, with the fixes of 12.2 #18-#20): every change of a run's
status, and of a backfill's, is one function of this module. The API's routes and servicers, the
worker, the scheduler and the reaper call these; nothing else writes a status.

    pending --promote--> queued --dispatch--> dispatched --start--> running
       |                   |                      |                    |
       +----- cancel ------+------- cancel -------+------ cancel ------+---> canceled
                                                  |                    |
                                                  +--- finish, reap ---+---> success | failed

    (pending: a backfill's run waiting for a slot; success, failed and canceled are terminal)

Statuses, allowed moves and the sets used below are in `runs.status` (every move is checked
against `RUN_TRANSITIONS`). Each function writes in the caller's transaction, in order: the rows,
their events, their realtime messages (`realtime`), and explicitly the commands to the workers
(`commands`: a wake-up for each queued run, a stop for each run ended while executing). A
finished run is never changed again: moves are guarded by the current status (a reaped run that
later reports success stays failed, a canceled run's late events are dropped).

Backfill advancement looks at the latest run of each partition (retry-failed adds runs), counts
queued, dispatched and running runs as in flight, promotes pending runs in date order up to the
concurrency, applies fail_fast to everything not finished, and ends the backfill success/failed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import Conflict
from icp_common.outbox import OutboxMessage

from .. import commands, realtime
from ..backfills import repository as backfills_repository
from ..backfills import service as backfills_service
from ..backfills.models import Backfill
from ..backfills.schemas import BackfillRead
from ..db import outbox
from ..execution import events, metrics
from ..execution import repository as execution_repository
from ..execution.events import EventRow, RunRef
from ..jobs import repository as jobs_repository
from . import alerts, repository, service
from .models import Event, Run
from .schemas import RunRead
from .status import (
    ACTIVE_BACKFILL,
    INFLIGHT,
    RETRYABLE,
    RUN_TRANSITIONS,
    STARTED,
    UNFINISHED,
    WAITING,
    BackfillStatus,
    RunStatus,
)

log = logging.getLogger(__name__)


def _finished() -> dict[str, Any]:
    return {"completed_at": func.clock_timestamp()}


async def _move(
    session: AsyncSession,
    ids: Iterable[uuid.UUID],
    to: RunStatus,
    *,
    from_: Sequence[RunStatus],
    values: Mapping[str, Any] | None = None,
    org_id: uuid.UUID | None = None,
) -> list[Run]:
    """`from_` -> `to` for the runs among `ids` still in one of `from_` (the others changed meanwhile)."""
    illegal = [s for s in from_ if to not in RUN_TRANSITIONS[s]]
    if illegal:
        raise ValueError(f"a run cannot move from {illegal} to {to}")
    return await execution_repository.transition(
        session, ids, from_statuses=from_, values={"status": to, **(values or {})}, org_id=org_id
    )


# --------------------------------------------------------------------- realtime and commands


async def _publish_runs(
    session: AsyncSession, change: realtime.Change, rows: Sequence[Run], before: Sequence[OutboxMessage] = ()
) -> None:
    """Flush changed runs; `before` (e.g. their new events' messages), their realtime messages,
    and a wake-up for the workers per queued one: one outbox statement."""
    if not rows and not before:
        return
    await session.flush()
    queued = [(r.id, r.org_id) for r in rows if r.status == RunStatus.QUEUED]
    await outbox.enqueue_many(
        session, [*before, *realtime.messages("runs", change, rows), *commands.wake_up_messages(queued)]
    )


async def _publish_backfill(session: AsyncSession, change: realtime.Change, row: Backfill) -> None:
    await session.flush()
    await realtime.publish_changes(session, "backfills", change, [row])


async def insert_events(session: AsyncSession, values: Sequence[EventRow]) -> list[Event]:
    """Store events of runs and publish them (no status check: see `record_events`)."""
    rows = await repository.add_events(session, values)
    await realtime.publish_changes(session, "events", "INSERT", rows)
    return rows


async def _store_events(session: AsyncSession, values: Sequence[EventRow]) -> list[OutboxMessage]:
    """Store events; their realtime messages, for the caller to publish with its run's."""
    return realtime.messages("events", "INSERT", await repository.add_events(session, values))


# ------------------------------------------------------------------------------- queue


async def _insert_runs(session: AsyncSession, values: Sequence[dict[str, Any]]) -> list[Run]:
    """New runs (values from `repository.run_values`, status queued or pending)."""
    if any(v["status"] not in WAITING for v in values):
        raise ValueError("a run is created queued or pending")
    rows = await repository.add_many(session, values)
    await _publish_runs(session, "INSERT", rows)
    return rows


async def queue_run(
    session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID | None, partition_date: date | None
) -> Run:
    """-> queued: one run (manual trigger or cron tick)."""
    values = repository.run_values(org_id, job_id, status=RunStatus.QUEUED, partition_date=partition_date)
    return (await _insert_runs(session, [values]))[0]


async def queue_job_run(
    session: AsyncSession,
    org_id: uuid.UUID,
    job_id: uuid.UUID,
    partition_date: date | None,
    also: Callable[[Run], Sequence[OutboxMessage]] | None = None,
) -> Run | None:
    """-> queued: a manual trigger of a job, which is marked run in the same statement; None if
    the organisation has no such job. `also(run)`: more messages for the same outbox statement
    (the trigger's audit entry)."""
    values = repository.run_values(org_id, job_id, status=RunStatus.QUEUED, partition_date=partition_date)
    row = await repository.add_for_job(session, values)
    if row is not None:
        await _publish_runs(session, "INSERT", [row], also(row) if also is not None else ())
    return row


async def create_backfill(
    session: AsyncSession,
    org_id: uuid.UUID,
    job_id: uuid.UUID | None,
    *,
    start_date: date,
    end_date: date,
    concurrency: int = 1,
    fail_fast: bool = False,
    queue_all: bool = False,
) -> Backfill:
    """A running backfill and its runs, one per day: the first `concurrency` queued, the rest
    pending (`queue_all` queues every run, bounded by the workers instead)."""
    partitions = backfills_service.check_range(start_date, end_date, concurrency)
    backfill = await backfills_repository.add(
        session,
        Backfill(
            org_id=org_id,
            job_id=job_id,
            status=BackfillStatus.RUNNING,
            start_date=start_date,
            end_date=end_date,
            concurrency=concurrency,
            fail_fast=fail_fast,
            partitions=partitions,
            started_at=func.now(),
        ),
    )
    await session.refresh(backfill)
    await _publish_backfill(session, "INSERT", backfill)
    values = [
        repository.run_values(
            org_id,
            job_id,
            status=RunStatus.QUEUED if queue_all or i < concurrency else RunStatus.PENDING,
            partition_date=start_date + timedelta(days=i),
            backfill_id=backfill.id,
        )
        for i in range(partitions)
    ]
    await _insert_runs(session, values)
    return backfill


# ------------------------------------------------------------------------- worker side


async def dispatch_runs(session: AsyncSession, worker_id: str, limit: int) -> list[Run]:
    """queued -> dispatched: the `limit` oldest queued runs nobody else is claiming, for this worker."""
    rows = await execution_repository.claim(session, worker_id, limit)
    await _publish_runs(session, "UPDATE", rows)
    return rows


async def claim_runs(session: AsyncSession, worker_id: str, limit: int, unseen: Sequence[Run] = ()) -> list[Run]:
    """queued -> dispatched -> running in one transaction, for a worker that executes every run it
    claims at once: the `limit` oldest queued runs nobody else is claiming, plus `unseen` (runs an
    earlier claim of this worker committed without the worker learning it; those still
    dispatched are started too). Both moves are published, in order; returns the runs (those
    ended meanwhile included: the caller executes the running ones)."""
    rows = await execution_repository.claim(session, worker_id, limit) if limit > 0 else []
    # The dispatched frames now: the start below updates the same row objects.
    dispatched = realtime.messages("runs", "UPDATE", rows)
    waiting = [r.id for r in [*unseen, *rows] if r.status == RunStatus.DISPATCHED]
    started = await _move(
        session,
        waiting,
        RunStatus.RUNNING,
        from_=(RunStatus.DISPATCHED,),
        values={"started_at": func.clock_timestamp()},
    )
    order = {run_id: i for i, run_id in enumerate(waiting)}
    started.sort(key=lambda r: order[r.id])  # frames in claim order (oldest first), as the dispatches
    await _publish_runs(session, "UPDATE", started, before=dispatched)
    return [*unseen, *rows]


async def start_run(session: AsyncSession, run: RunRef) -> Run | None:
    """dispatched -> running (started_at); None if the run is no longer dispatched (canceled)."""
    rows = await _move(
        session,
        [run.id],
        RunStatus.RUNNING,
        from_=(RunStatus.DISPATCHED,),
        values={"started_at": func.clock_timestamp()},
    )
    if not rows:
        # Already running: an earlier attempt of this start committed but the worker lost the
        # answer (connection dropped during COMMIT); only the run's own worker starts it.
        current = await execution_repository.lock_run(session, run.id, share=True)
        return current if current is not None and current.status == RunStatus.RUNNING else None
    await _publish_runs(session, "UPDATE", rows)
    return rows[0]


async def record_events(session: AsyncSession, run: RunRef, values: Sequence[EventRow]) -> bool:
    """Store events of a run that is still executing. False once it ended elsewhere (canceled,
    reaped): then only the events emitted before it ended are kept (`_settle`)."""
    current = await execution_repository.lock_run(session, run.id, share=True)
    if current is None:
        return False
    if current.status not in STARTED:
        await _settle(session, run, current, values)
        return False
    if values:
        await insert_events(session, values)
    return True


async def _settle(session: AsyncSession, run: RunRef, current: Run, values: Sequence[EventRow]) -> None:
    """A run ended elsewhere while its process was still reporting (a cancel acts at once, the
    process is killed a moment later): keep what happened before the end, cancel the assets that
    were left open, drop the rest."""
    cutoff = current.completed_at
    kept = [v for v in values if cutoff is None or v["timestamp"] <= cutoff]
    if kept:
        await insert_events(session, kept)
    reason = f"run {current.status}"
    extra = [events.asset_canceled(run, a, reason) for a in await execution_repository.open_assets(session, [run.id])]
    if extra:
        await insert_events(session, extra)


async def finish_run(
    session: AsyncSession,
    run: RunRef,
    *,
    status: RunStatus,
    events_before: Sequence[EventRow] = (),
    failure: str | None = None,
    interrupted: str | None = None,
) -> bool:
    """Complete (success) or fail an executing run: its last events, then (for a run that did not
    finish by itself) `asset_canceled` for its unfinished assets (`interrupted` = why) and a
    `run_failed` event (`failure`), the status, and the advance of its backfill.

    Idempotent, so the worker can retry it when it could not learn whether its commit landed: a
    run already in `status` counts as finished (True), its events already stored are skipped (by
    id). False if it had ended otherwise (canceled, reaped); then only the events emitted before
    that end are kept."""
    if status not in (RunStatus.SUCCESS, RunStatus.FAILED):
        raise ValueError(f"a run finishes success or failed, not {status}")
    backfill = await execution_repository.lock_backfill(session, run.backfill_id) if run.backfill_id else None
    rows = await _move(session, [run.id], status, from_=STARTED, values=_finished())
    if not rows:
        current = await execution_repository.lock_run(session, run.id, share=True)
        if current is None:
            return False
        await _settle(session, run, current, events_before)
        return current.status == status
    # The events' frames, then the run's: one outbox statement.
    published = await _store_events(session, events_before) if events_before else []
    extra: list[EventRow] = []
    if interrupted:
        open_assets = await execution_repository.open_assets(session, [run.id])
        extra += [events.asset_canceled(run, a, interrupted) for a in open_assets]
    if failure is not None:
        extra.append(events.run_failed(run, failure))
    if extra:
        published += await _store_events(session, extra)
    if status == RunStatus.FAILED:  # the alert's facts need the events stored above
        published += await alerts.run_failed(session, rows)
    await _publish_runs(session, "UPDATE", rows, before=published)
    if backfill is not None:
        await advance_backfill(session, backfill)
    metrics.RUNS_FINISHED.labels(status.value).inc()
    metrics.observe_durations(rows, status.value)
    return True


async def reap_run(session: AsyncSession, lost: execution_repository.LostRun) -> bool:
    """dispatched/running -> failed: the reaper's verdict, re-checked under lock (the run is still
    in flight and its heartbeat did not move, or it is still dispatched after the dispatch timeout)."""
    backfill = await execution_repository.lock_backfill(session, lost.backfill_id) if lost.backfill_id else None
    current = await execution_repository.lock_run(session, lost.id)
    if current is None or current.status not in STARTED:
        return False
    if lost.heartbeat_lost and current.heartbeat_at != lost.heartbeat_at:
        return False  # it heartbeated meanwhile
    if not lost.heartbeat_lost and current.status != RunStatus.DISPATCHED:
        return False  # it started meanwhile
    rows = await _move(session, [lost.id], RunStatus.FAILED, from_=STARTED, values=_finished())
    if not rows:
        return False
    ref = RunRef.of(rows[0])
    extra = [
        events.asset_canceled(ref, a, "run lost") for a in await execution_repository.open_assets(session, [ref.id])
    ]
    extra.append(events.run_failed(ref, lost.reason))
    await insert_events(session, extra)
    await _publish_runs(session, "UPDATE", rows, before=await alerts.run_failed(session, rows))
    # A worker that is alive after all (e.g. cut off from the database) stops the run's process.
    await commands.stop_runs(session, [ref.id])
    if backfill is not None:
        await advance_backfill(session, backfill)
    metrics.observe_durations(rows, RunStatus.FAILED.value)
    return True


# ---------------------------------------------------------------------------------- cancel


async def _cancel(
    session: AsyncSession, ids: Sequence[uuid.UUID], reason: str, org_id: uuid.UUID | None = None
) -> list[Run]:
    """-> canceled for these runs if unfinished: waiting ones at once; executing ones also get
    `asset_canceled` for their unfinished assets, a log event saying why, and a stop command that
    makes their worker kill the run's process."""
    # Waiting ones first: a run a worker claims meanwhile (queued -> dispatched) is then still
    # caught by the second statement, which sees the claim (statuses only move forward).
    waiting = await _move(session, ids, RunStatus.CANCELED, from_=WAITING, values=_finished(), org_id=org_id)
    started = await _move(session, ids, RunStatus.CANCELED, from_=STARTED, values=_finished(), org_id=org_id)
    if started:
        refs = {r.id: RunRef.of(r) for r in started}
        open_assets = await execution_repository.open_assets(session, list(refs))
        values = [events.asset_canceled(refs[a.run_id], a, reason) for a in open_assets]
        values += [events.run_canceled(ref, reason) for ref in refs.values()]
        await insert_events(session, values)
    changed = sorted([*started, *waiting], key=lambda r: (r.partition_date is None, r.partition_date, r.created_at))
    await _publish_runs(session, "UPDATE", changed)
    await commands.stop_runs(session, [r.id for r in started])
    return changed


def _who(caller: Member) -> str:
    return caller.email or "a user"


async def cancel_run(session: AsyncSession, caller: Member, run_id: uuid.UUID) -> RunRead:
    """Cancel a run: pending/queued at once; dispatched/running too, and its process is killed
    (within a second through NATS, at the next heartbeat at worst). 409 if it already ended."""
    org_id = caller.org_id
    run = await repository.get(session, org_id, run_id)
    if run is None:
        raise service.not_found(run_id)
    backfill = await execution_repository.lock_backfill(session, run.backfill_id) if run.backfill_id else None
    changed = await _cancel(session, [run.id], f"canceled by {_who(caller)}", org_id=org_id)
    if not changed:
        current = await execution_repository.lock_run(session, run.id)
        raise Conflict(f"Run {run_id} is already {current.status if current else 'gone'}")
    if backfill is not None:
        await advance_backfill(session, backfill)
    return service.read(changed[0])


# ------------------------------------------------------------------------------- backfills


async def _set_backfill(session: AsyncSession, backfill: Backfill, **values: Any) -> Backfill:
    stmt = (
        update(Backfill)
        .where(Backfill.id == backfill.id)
        .values(**values)
        .returning(Backfill)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    row = (await session.execute(stmt)).scalar_one()
    await _publish_backfill(session, "UPDATE", row)
    return row


async def advance_backfill(session: AsyncSession, backfill: Backfill) -> Backfill:
    """Spec 6.3 on a locked backfill: fail_fast, finish, or promote pending runs (-> queued) into
    free slots."""
    if backfill.status not in ACTIVE_BACKFILL:
        return backfill
    latest = await execution_repository.latest_runs(session, backfill.id)
    failed = [r for r in latest if r.status == RunStatus.FAILED]
    if backfill.fail_fast and failed:
        rest = [r.id for r in latest if r.status in UNFINISHED]
        await _cancel(session, rest, f"fail_fast: partition {failed[0].partition_date} failed")
        await alerts.backfill_failed(session, backfill, failed)
        return await _set_backfill(session, backfill, status=BackfillStatus.FAILED, **_finished())
    inflight = [r for r in latest if r.status in INFLIGHT]
    pending = [r for r in latest if r.status == RunStatus.PENDING]
    if not inflight and not pending:
        succeeded = all(r.status == RunStatus.SUCCESS for r in latest)
        outcome = BackfillStatus.SUCCESS if succeeded else BackfillStatus.FAILED
        if outcome == BackfillStatus.FAILED:
            await alerts.backfill_failed(session, backfill, failed)
        return await _set_backfill(session, backfill, status=outcome, **_finished())
    free = backfill.concurrency - len(inflight)
    if free > 0 and pending:
        promoted = await _move(session, [r.id for r in pending[:free]], RunStatus.QUEUED, from_=(RunStatus.PENDING,))
        promoted.sort(key=lambda r: (r.partition_date is None, r.partition_date))
        await _publish_runs(session, "UPDATE", promoted)
    return backfill


async def advance_backfill_by_id(session: AsyncSession, backfill_id: uuid.UUID) -> None:
    """The scheduler's sweep (a backfill whose runs ended without advancing it, e.g. before an upgrade)."""
    backfill = await execution_repository.lock_backfill(session, backfill_id)
    if backfill is not None:
        await advance_backfill(session, backfill)


async def _locked_backfill(session: AsyncSession, caller: Member, backfill_id: uuid.UUID) -> Backfill:
    backfill = await execution_repository.lock_backfill(session, backfill_id, caller.org_id)
    if backfill is None:
        raise backfills_service.not_found(backfill_id)
    return backfill


async def cancel_backfill(session: AsyncSession, caller: Member, backfill_id: uuid.UUID) -> BackfillRead:
    """Cancel every unfinished run of the backfill and end it `canceled`, in one transaction."""
    backfill = await _locked_backfill(session, caller, backfill_id)
    if backfill.status not in ACTIVE_BACKFILL:
        raise Conflict(f"Backfill {backfill_id} is already {backfill.status}")
    ids = [r.id for r in await execution_repository.unfinished_runs(session, backfill.id)]
    await _cancel(session, ids, f"backfill canceled by {_who(caller)}")
    backfill = await _set_backfill(session, backfill, status=BackfillStatus.CANCELED, **_finished())
    return backfills_service.read(backfill)


async def retry_failed(session: AsyncSession, caller: Member, backfill_id: uuid.UUID) -> BackfillRead:
    """Retry: new (pending) runs for the partitions whose latest run failed or was canceled (the
    others are kept); the backfill runs again and promotes them up to its concurrency."""
    backfill = await _locked_backfill(session, caller, backfill_id)
    job_id = backfill.job_id
    if job_id is None:
        raise Conflict(f"Backfill {backfill_id} has no job any more (it was deleted)")
    retry = [r for r in await execution_repository.latest_runs(session, backfill.id) if r.status in RETRYABLE]
    if not retry:
        raise Conflict(f"Backfill {backfill_id} has no failed or canceled runs")
    values = [
        repository.run_values(
            backfill.org_id, job_id, status=RunStatus.PENDING, partition_date=r.partition_date, backfill_id=backfill.id
        )
        for r in retry
    ]
    await _insert_runs(session, values)
    backfill = await _set_backfill(session, backfill, status=BackfillStatus.RUNNING, completed_at=None)
    backfill = await advance_backfill(session, backfill)
    await jobs_repository.mark_run(session, backfill.org_id, job_id)
    return backfills_service.read(backfill)
