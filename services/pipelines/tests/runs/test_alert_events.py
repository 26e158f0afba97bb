"""Failure alert events (issue 19.2): a run that fails, and a backfill that ends with failures,
write one `pipelines.alerts.*` message to the outbox in the same transaction, with the job, the
run, the partition and the run's first error; successes write none."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from icp_common.contracts import PipelineAlert
from icp_pipelines.execution import events
from icp_pipelines.execution.events import RunRef
from icp_pipelines.runs import alerts, lifecycle
from icp_pipelines.runs.status import RunStatus


async def _running(db, org: uuid.UUID, partition: date | None = None) -> RunRef:
    async with db() as s:
        await lifecycle.queue_run(s, org, None, partition)
    async with db() as s:
        [run] = await lifecycle.claim_runs(s, "worker-1", 1)
    return RunRef.of(run)


async def test_a_failed_run_emits_one_alert_with_its_first_error(db, world, outbox):
    ref = await _running(db, world.org_a, date(2026, 12, 4))
    now = events.row(ref, "asset_failed")["timestamp"]
    first = events.row(
        ref, "asset_failed", asset_key="sales", error="ZeroDivisionError: division by zero", timestamp=now
    )
    later = events.row(ref, "asset_failed", asset_key="b", error="later", timestamp=now + timedelta(seconds=1))
    async with db() as s:
        assert await lifecycle.finish_run(s, ref, status=RunStatus.FAILED, events_before=[later, first])
    async with db() as s:  # the worker retrying the same finish: no second event
        assert await lifecycle.finish_run(s, ref, status=RunStatus.FAILED)
    [message] = await outbox("pipelines.alerts.")
    assert message["subject"] == "pipelines.alerts.run_failed"
    alert = PipelineAlert.model_validate(message["payload"])
    assert alert.kind == "run_failed" and alert.run_id == ref.id and alert.org_id == world.org_a
    assert alert.partition_date == "2026-12-04" and alert.error == "ZeroDivisionError: division by zero"
    assert alert.event_id == alerts.event_id("run_failed", ref.id)


async def test_a_reaped_run_emits_an_alert_and_a_successful_one_none(db, world, outbox):
    ok = await _running(db, world.org_a)
    async with db() as s:
        assert await lifecycle.finish_run(s, ok, status=RunStatus.SUCCESS)
    assert await outbox("pipelines.alerts.") == []
    lost = await _running(db, world.org_a)
    async with db() as s:
        assert await lifecycle.finish_run(s, lost, status=RunStatus.FAILED, failure="worker lost")
    [message] = await outbox("pipelines.alerts.")
    assert message["payload"]["error"] == "worker lost"


async def test_a_backfill_ending_with_failures_emits_one_backfill_alert(db, world, outbox):
    async with db() as s:
        backfill = await lifecycle.create_backfill(
            s, world.org_a, None, start_date=date(2026, 12, 1), end_date=date(2026, 12, 2), concurrency=2
        )
    refs = []
    async with db() as s:
        refs = [RunRef.of(r) for r in await lifecycle.claim_runs(s, "worker-1", 2)]
    refs.sort(key=lambda r: r.partition_date)
    async with db() as s:
        assert await lifecycle.finish_run(s, refs[0], status=RunStatus.FAILED, failure="boom")
    async with db() as s:
        assert await lifecycle.finish_run(s, refs[1], status=RunStatus.SUCCESS)
    messages = await outbox("pipelines.alerts.")
    assert [m["subject"] for m in messages] == ["pipelines.alerts.run_failed", "pipelines.alerts.backfill_failed"]
    alert = PipelineAlert.model_validate(messages[1]["payload"])
    assert alert.backfill_id == backfill.id and alert.failed_runs == 1
    assert alert.run_id == refs[0].id and alert.partition_date == "2026-12-01" and alert.error == "boom"


async def test_a_run_running_past_a_threshold_is_reported_stuck_once_per_threshold(db, world, outbox):
    stuck = await _running(db, world.org_a)
    fresh = await _running(db, world.org_a)
    now = datetime.now(UTC)
    async with db() as s:
        await s.execute(
            text("UPDATE runs SET started_at = :t WHERE id = :id"),
            {"t": now - timedelta(minutes=30, seconds=20), "id": stuck.id},
        )
        await s.execute(
            text("UPDATE runs SET started_at = :t WHERE id = :id"), {"t": now - timedelta(minutes=1), "id": fresh.id}
        )
    window = timedelta(minutes=1)
    async with db() as s:
        assert await alerts.stuck_runs(s, now, window) == 1
    async with db() as s:  # the next sweep, still inside the window: the same event again
        assert await alerts.stuck_runs(s, now + timedelta(seconds=10), window) == 1
    async with db() as s:  # past the window: nothing until the next threshold (45 min)
        assert await alerts.stuck_runs(s, now + timedelta(minutes=2), window) == 0
    messages = await outbox("pipelines.alerts.")
    assert [m["subject"] for m in messages] == ["pipelines.alerts.run_stuck"] * 2
    first, again = (PipelineAlert.model_validate(m["payload"]) for m in messages)
    assert first.run_id == stuck.id and first.stuck_minutes == 30 and first.event_id == again.event_id
