"""The run lifecycle (spec 6.1-6.3, with the fixes of 12.2 #18-#20), shared by the worker, the
scheduler and the API's cancel/retry routes.

Every change goes through `runs.service` / `backfills.service`, so its realtime message is written
to the outbox in the same transaction, in order: a run's events, then the run, then what its end
caused (backfill, promoted or canceled runs). A finished run is never changed again: transitions
are guarded by the current status (a reaped run that later reports success stays failed, a
canceled run's late events are dropped).

Backfill advancement looks at the latest run of each partition (retry-failed adds runs), counts
queued, dispatched and running runs as in flight, promotes pending runs in date order up to the
concurrency, applies fail_fast to everything not finished, and ends the backfill success/failed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import Conflict
from icp_common.identity import Identity

from .. import scope
from ..backfills import service as backfills_service
from ..backfills.models import ACTIVE_BACKFILL_STATUSES, Backfill
from ..backfills.schemas import BackfillRead
from ..db import outbox
from ..jobs import repository as jobs_repository
from ..runs import repository as runs_repository
from ..runs import service as runs_service
from ..runs.models import Run
from ..runs.schemas import RunRead
from . import events, metrics, repository
from .events import RunRef
from .repository import INFLIGHT, STARTED, UNFINISHED

log = logging.getLogger(__name__)

RUN_CANCEL_SUBJECT = "pipelines.runs.cancel"
WAITING = ("pending", "queued")


def _finished() -> dict[str, Any]:
    return {"completed_at": func.clock_timestamp()}


# ------------------------------------------------------------------------------- worker side


async def start_run(session: AsyncSession, run: RunRef) -> Run | None:
    """dispatched -> running (started_at); None if the run is no longer dispatched (canceled)."""
    rows = await repository.transition(
        session,
        [run.id],
        from_statuses=("dispatched",),
        values={"status": "running", "started_at": func.clock_timestamp()},
    )
    await runs_service.save_changes(session, rows)
    return rows[0] if rows else None


async def append_events(session: AsyncSession, run: RunRef, values: Sequence[dict[str, Any]]) -> bool:
    """Store events of a run that is still executing. False once it ended elsewhere (canceled,
    reaped): then only the events emitted before it ended are kept (`settle`)."""
    current = await repository.lock_run(session, run.id, share=True)
    if current is None:
        return False
    if current.status not in STARTED:
        await _settle(session, run, current, values)
        return False
    if values:
        await runs_service.record_events(session, values)
    return True


async def _settle(session: AsyncSession, run: RunRef, current: Run, values: Sequence[dict[str, Any]]) -> None:
    """A run ended elsewhere while its process was still reporting (a cancel acts at once, the
    process is killed a moment later): keep what happened before the end, cancel the assets that
    were left open, drop the rest."""
    cutoff = current.completed_at
    kept = [v for v in values if cutoff is None or v["timestamp"] <= cutoff]
    if kept:
        await runs_service.record_events(session, kept)
    reason = f"run {current.status}"
    extra = [events.asset_canceled(run, a, reason) for a in await repository.open_assets(session, [run.id])]
    if extra:
        await runs_service.record_events(session, extra)


async def finish_run(
    session: AsyncSession,
    run: RunRef,
    *,
    status: str,
    events_before: Sequence[dict[str, Any]] = (),
    failure: str | None = None,
    interrupted: str | None = None,
) -> bool:
    """End an executing run: its last events, then (for a run that did not finish by itself)
    `asset_canceled` for its unfinished assets (`interrupted` = why) and a `run_failed` event
    (`failure`), the status, and the advance of its backfill. False if it had already ended."""
    backfill = await repository.lock_backfill(session, run.backfill_id) if run.backfill_id else None
    rows = await repository.transition(
        session, [run.id], from_statuses=STARTED, values={"status": status, **_finished()}
    )
    if not rows:
        current = await repository.lock_run(session, run.id, share=True)
        if current is not None:
            await _settle(session, run, current, events_before)
        return False
    if events_before:
        await runs_service.record_events(session, events_before)
    extra: list[dict[str, Any]] = []
    if interrupted:
        extra += [events.asset_canceled(run, a, interrupted) for a in await repository.open_assets(session, [run.id])]
    if failure is not None:
        extra.append(events.run_failed(run, failure))
    if extra:
        await runs_service.record_events(session, extra)
    await runs_service.save_changes(session, rows)
    if backfill is not None:
        await advance_backfill(session, backfill)
    metrics.RUNS_FINISHED.labels(status).inc()
    return True


async def fail_lost_run(session: AsyncSession, lost: repository.LostRun) -> bool:
    """The reaper's verdict, re-checked under lock: the run is still in flight and its heartbeat
    did not move (or it is still dispatched after the dispatch timeout)."""
    backfill = await repository.lock_backfill(session, lost.backfill_id) if lost.backfill_id else None
    current = await repository.lock_run(session, lost.id)
    if current is None or current.status not in STARTED:
        return False
    if lost.heartbeat_lost and current.heartbeat_at != lost.heartbeat_at:
        return False  # it heartbeated meanwhile
    if not lost.heartbeat_lost and current.status != "dispatched":
        return False  # it started meanwhile
    rows = await repository.transition(
        session, [lost.id], from_statuses=STARTED, values={"status": "failed", **_finished()}
    )
    if not rows:
        return False
    ref = RunRef.of(rows[0])
    extra = [events.asset_canceled(ref, a, "run lost") for a in await repository.open_assets(session, [ref.id])]
    extra.append(events.run_failed(ref, lost.reason))
    await runs_service.record_events(session, extra)
    await runs_service.save_changes(session, rows)
    # A worker that is alive after all (e.g. cut off from the database) stops the run's process.
    await outbox.enqueue(session, RUN_CANCEL_SUBJECT, {"run_ids": [str(ref.id)]})
    if backfill is not None:
        await advance_backfill(session, backfill)
    return True


# --------------------------------------------------------------------------------- backfills


async def _set_backfill(session: AsyncSession, backfill: Backfill, **values: Any) -> Backfill:
    stmt = (
        update(Backfill)
        .where(Backfill.id == backfill.id)
        .values(**values)
        .returning(Backfill)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    row = (await session.execute(stmt)).scalar_one()
    await backfills_service.save_changes(session, [row])
    return row


async def _cancel(
    session: AsyncSession, ids: Sequence[uuid.UUID], reason: str, org_id: uuid.UUID | None = None
) -> list[Run]:
    """Cancel these runs if unfinished: waiting ones at once; executing ones also get
    `asset_canceled` for their unfinished assets, a log event saying why, and a message that makes
    their worker kill the run's process."""
    started = await repository.transition(
        session, ids, from_statuses=STARTED, values={"status": "canceled", **_finished()}, org_id=org_id
    )
    waiting = await repository.transition(
        session, ids, from_statuses=WAITING, values={"status": "canceled", **_finished()}, org_id=org_id
    )
    if started:
        refs = {r.id: RunRef.of(r) for r in started}
        values = [
            events.asset_canceled(refs[a.run_id], a, reason) for a in await repository.open_assets(session, list(refs))
        ]
        values += [events.run_canceled(ref, reason) for ref in refs.values()]
        await runs_service.record_events(session, values)
    changed = sorted([*started, *waiting], key=lambda r: (r.partition_date is None, r.partition_date, r.created_at))
    await runs_service.save_changes(session, changed)
    if started:
        await outbox.enqueue(session, RUN_CANCEL_SUBJECT, {"run_ids": [str(r.id) for r in started]})
    return changed


async def advance_backfill(session: AsyncSession, backfill: Backfill) -> Backfill:
    """Spec 6.3 on a locked backfill: fail_fast, finish, or promote pending runs into free slots."""
    if backfill.status not in ACTIVE_BACKFILL_STATUSES:
        return backfill
    latest = await repository.latest_runs(session, backfill.id)
    failed = [r for r in latest if r.status == "failed"]
    if backfill.fail_fast and failed:
        rest = [r.id for r in latest if r.status in UNFINISHED]
        await _cancel(session, rest, f"fail_fast: partition {failed[0].partition_date} failed")
        return await _set_backfill(session, backfill, status="failed", **_finished())
    inflight = [r for r in latest if r.status in INFLIGHT]
    pending = [r for r in latest if r.status == "pending"]
    if not inflight and not pending:
        outcome = "success" if all(r.status == "success" for r in latest) else "failed"
        return await _set_backfill(session, backfill, status=outcome, **_finished())
    free = backfill.concurrency - len(inflight)
    if free > 0 and pending:
        promoted = await repository.transition(
            session, [r.id for r in pending[:free]], from_statuses=("pending",), values={"status": "queued"}
        )
        promoted.sort(key=lambda r: (r.partition_date is None, r.partition_date))
        await runs_service.save_changes(session, promoted)
    return backfill


async def advance_backfill_by_id(session: AsyncSession, backfill_id: uuid.UUID) -> None:
    """The scheduler's sweep (a backfill whose runs ended without advancing it, e.g. before an upgrade)."""
    backfill = await repository.lock_backfill(session, backfill_id)
    if backfill is not None:
        await advance_backfill(session, backfill)


# ----------------------------------------------------------------------------- API use cases


def _who(identity: Identity) -> str:
    return identity.email or "a user"


async def cancel_run(session: AsyncSession, identity: Identity, run_id: uuid.UUID) -> RunRead:
    """Cancel a run: pending/queued at once; dispatched/running too, and its process is killed
    (within a second through NATS, at the next heartbeat at worst). 409 if it already ended."""
    org_id = scope.org_id(identity)
    run = await runs_repository.get(session, org_id, run_id)
    if run is None:
        raise runs_service.not_found(run_id)
    backfill = await repository.lock_backfill(session, run.backfill_id) if run.backfill_id else None
    changed = await _cancel(session, [run.id], f"canceled by {_who(identity)}", org_id=org_id)
    if not changed:
        current = await repository.lock_run(session, run.id)
        raise Conflict(f"Run {run_id} is already {current.status if current else 'gone'}")
    if backfill is not None:
        await advance_backfill(session, backfill)
    return runs_service.read(changed[0])


async def _locked_backfill(session: AsyncSession, identity: Identity, backfill_id: uuid.UUID) -> Backfill:
    backfill = await repository.lock_backfill(session, backfill_id, scope.org_id(identity))
    if backfill is None:
        raise backfills_service.not_found(backfill_id)
    return backfill


async def cancel_backfill(session: AsyncSession, identity: Identity, backfill_id: uuid.UUID) -> BackfillRead:
    """Cancel every unfinished run of the backfill and end it `canceled`, in one transaction."""
    backfill = await _locked_backfill(session, identity, backfill_id)
    if backfill.status not in ACTIVE_BACKFILL_STATUSES:
        raise Conflict(f"Backfill {backfill_id} is already {backfill.status}")
    ids = [r.id for r in await repository.unfinished_runs(session, backfill.id)]
    await _cancel(session, ids, f"backfill canceled by {_who(identity)}")
    backfill = await _set_backfill(session, backfill, status="canceled", **_finished())
    return backfills_service.read(backfill)


async def retry_failed(session: AsyncSession, identity: Identity, backfill_id: uuid.UUID) -> BackfillRead:
    """New runs for the partitions whose latest run failed or was canceled (the others are kept);
    the backfill runs again and promotes them up to its concurrency."""
    backfill = await _locked_backfill(session, identity, backfill_id)
    job_id = backfill.job_id
    if job_id is None:
        raise Conflict(f"Backfill {backfill_id} has no job any more (it was deleted)")
    retry = [r for r in await repository.latest_runs(session, backfill.id) if r.status in ("failed", "canceled")]
    if not retry:
        raise Conflict(f"Backfill {backfill_id} has no failed or canceled runs")
    values = [
        runs_repository.run_values(
            backfill.org_id, job_id, status="pending", partition_date=r.partition_date, backfill_id=backfill.id
        )
        for r in retry
    ]
    await runs_service.create_runs(session, values)
    backfill = await _set_backfill(session, backfill, status="running", completed_at=None)
    backfill = await advance_backfill(session, backfill)
    await jobs_repository.mark_run(session, backfill.org_id, job_id)
    return backfills_service.read(backfill)
