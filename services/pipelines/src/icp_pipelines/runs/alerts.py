"""Domain events for failure alerts (icp_common.contracts.PipelineAlert), written to the outbox in
the transaction that fails the run or the backfill; the notifications service matches them with
the organisation's alert rules.

The event id is derived from what failed (uuid5 of kind + run/backfill id): a run or backfill
fails once (the lifecycle's moves are guarded), and even a repeated publish is the same event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.contracts import (
    ALERT_BACKFILL_FAILED,
    ALERT_RUN_FAILED,
    ALERT_RUN_STUCK,
    STUCK_MINUTES,
    PipelineAlert,
    alert_subject,
)
from icp_common.outbox import OutboxMessage

from ..backfills.models import Backfill
from ..db import outbox
from ..execution.repository import PartitionRun
from ..jobs.models import Job
from .models import Event, Run
from .status import RunStatus

# Bounds the first error carried in the event (an e-mail/chat message, not a log).
MAX_ERROR_CHARS = 2000
_NAMESPACE = uuid.UUID("6f1d3c1e-5a0b-4f43-9a51-3f0c6b0e7a10")


def event_id(kind: str, subject_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{kind}:{subject_id}")


async def _facts(session: AsyncSession, job_id: uuid.UUID | None, run_id: uuid.UUID | None) -> tuple[str, str]:
    """The job's name and the run's first error (its earliest event carrying one: the cause, not
    the cancellations after it), in one statement (a failure costs one more than a success)."""
    name = select(Job.name).where(Job.id == job_id).scalar_subquery()
    error = (
        select(Event.error)
        .where(Event.run_id == run_id, Event.error.is_not(None), Event.error != "")
        .order_by(Event.timestamp, Event.id)
        .limit(1)
        .scalar_subquery()
    )
    row = (await session.execute(select(name, error))).one()
    return row[0] or "", (row[1] or "")[:MAX_ERROR_CHARS]


async def run_failed(session: AsyncSession, runs: Sequence[Run]) -> list[OutboxMessage]:
    """One `pipelines.alerts.run_failed` per run the caller has just failed (after storing its
    events), for the caller's outbox statement."""
    messages = []
    for run in runs:
        job_name, error = await _facts(session, run.job_id, run.id)
        alert = PipelineAlert(
            event_id=event_id(ALERT_RUN_FAILED, run.id),
            kind="run_failed",
            org_id=run.org_id,
            job_id=run.job_id,
            job_name=job_name,
            run_id=run.id,
            backfill_id=run.backfill_id,
            partition_date=run.partition_date.isoformat() if run.partition_date else None,
            error=error,
            occurred_at=datetime.now(UTC),
        )
        messages.append(OutboxMessage(alert_subject(ALERT_RUN_FAILED), alert.payload(), msg_id=alert.event_id))
    return messages


async def backfill_failed(session: AsyncSession, backfill: Backfill, failed: Sequence[PartitionRun]) -> None:
    """`pipelines.alerts.backfill_failed` (the caller has just ended it failed); `failed` = the
    latest runs of its partitions that failed, the first of which is named in the message. The
    event id includes that run: a backfill retried (new runs) that fails again is a new event."""
    first = min(failed, key=lambda r: (r.partition_date is None, r.partition_date)) if failed else None
    job_name, error = await _facts(session, backfill.job_id, first.id if first else None)
    alert = PipelineAlert(
        event_id=event_id(ALERT_BACKFILL_FAILED, uuid.uuid5(backfill.id, str(first.id if first else ""))),
        kind="backfill_failed",
        org_id=backfill.org_id,
        job_id=backfill.job_id,
        job_name=job_name,
        run_id=first.id if first else None,
        backfill_id=backfill.id,
        partition_date=first.partition_date.isoformat() if first and first.partition_date else None,
        error=error,
        failed_runs=len(failed),
        occurred_at=datetime.now(UTC),
    )
    await outbox.enqueue(session, alert_subject(ALERT_BACKFILL_FAILED), alert.payload(), msg_id=alert.event_id)


async def stuck_runs(session: AsyncSession, now: datetime, window: timedelta, limit: int = 500) -> int:
    """`pipelines.alerts.run_stuck` for each running run that passed a threshold of STUCK_MINUTES
    within the last `window` (the scheduler sweeps more often than that: a crossing is reported by
    a few sweeps, as the same event id, which JetStream and the notifications deliveries
    de-duplicate). A crossing while no scheduler ran longer than `window` is not reported."""
    first = timedelta(minutes=STUCK_MINUTES[0])
    stmt = (
        select(Run)
        .where(Run.status == RunStatus.RUNNING, Run.started_at <= now - first)
        .order_by(Run.started_at)
        .limit(limit)
    )
    count = 0
    for run in (await session.scalars(stmt)).all():
        assert run.started_at is not None
        elapsed = now - run.started_at
        for minutes in STUCK_MINUTES:
            if not timedelta(minutes=minutes) <= elapsed < timedelta(minutes=minutes) + window:
                continue
            job_name, _ = await _facts(session, run.job_id, None)
            alert = PipelineAlert(
                event_id=event_id(ALERT_RUN_STUCK, uuid.uuid5(run.id, str(minutes))),
                kind="run_stuck",
                org_id=run.org_id,
                job_id=run.job_id,
                job_name=job_name,
                run_id=run.id,
                backfill_id=run.backfill_id,
                partition_date=run.partition_date.isoformat() if run.partition_date else None,
                occurred_at=now,
                stuck_minutes=minutes,
            )
            await outbox.enqueue(session, alert_subject(ALERT_RUN_STUCK), alert.payload(), msg_id=alert.event_id)
            count += 1
    return count
