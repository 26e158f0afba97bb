"""Realtime: every insert/update of runs and backfills and every insert of events is written to the
outbox in the same transaction and published on `realtime.<org_id>.<table>` with the row as
PostgreSQL's row_to_json renders it (spec 5.2)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from icp_pipelines import realtime
from icp_pipelines.execution import events
from icp_pipelines.execution.events import RunRef
from icp_pipelines.formats import pg_json_time
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs.models import Run

from .factories import create_job

RUN_RECORD = [
    "id",
    "job_id",
    "org_id",
    "status",
    "created_at",
    "started_at",
    "backfill_id",
    "completed_at",
    "partition_date",
]
BACKFILL_RECORD = [
    "id",
    "job_id",
    "org_id",
    "status",
    "end_date",
    "fail_fast",
    "created_at",
    "partitions",
    "start_date",
    "started_at",
    "concurrency",
    "completed_at",
]
EVENT_RECORD = [
    "id",
    "error",
    "org_id",
    "run_id",
    "message",
    "asset_id",
    "asset_key",
    "timestamp",
    "traceback",
    "event_type",
    "backfill_id",
    "partition_or_window",
]


async def test_records_match_postgres_row_to_json(clients, db, world):
    job = await create_job(clients.editor)
    await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-02"}
    )
    async with db() as s:
        run_id = (await s.execute(text("SELECT id FROM runs LIMIT 1"))).scalar_one()
        await s.execute(
            text(
                "UPDATE runs SET started_at = '2026-11-24 23:22:11.4313+00', completed_at = "
                "'2026-11-24 23:22:12+00' WHERE id = :id"
            ),
            {"id": run_id},
        )
    columns = ", ".join(RUN_RECORD)
    async with db() as s:
        expected = (
            await s.execute(
                text(f"SELECT row_to_json(r)::jsonb::text FROM (SELECT {columns} FROM runs WHERE id = :id) r"),
                {"id": run_id},
            )
        ).scalar_one()
        row = await s.get(Run, run_id)
        assert json.dumps(realtime.record("runs", row), separators=(", ", ": ")) == expected
    assert list(json.loads(expected)) == RUN_RECORD  # jsonb order: by length, then bytewise


def test_pg_json_time_format():
    assert pg_json_time(datetime(2026, 11, 24, 23, 22, 11, 431316, tzinfo=UTC)) == "2026-11-24T23:22:11.431316+00:00"
    assert pg_json_time(datetime(2026, 11, 24, 23, 22, 11, 431300, tzinfo=UTC)) == "2026-11-24T23:22:11.4313+00:00"
    assert pg_json_time(datetime(2026, 11, 24, 23, 22, 11, tzinfo=UTC)) == "2026-11-24T23:22:11+00:00"


async def test_outbox_rows_of_a_run_a_backfill_and_events(clients, outbox, world, db):
    job = await create_job(clients.editor)
    run_id = (await clients.editor.post(f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-01-02"})).json()[
        "run_id"
    ]
    rows = await outbox("realtime.")
    assert [r["subject"] for r in rows] == [f"realtime.{world.org_a}.runs"]
    message = rows[0]["payload"]
    assert (message["table"], message["event"]) == ("runs", "INSERT")
    assert list(message["record"]) == RUN_RECORD
    assert message["record"]["id"] == run_id and message["record"]["partition_date"] == "2024-01-02"
    assert message["record"]["status"] == "queued" and message["record"]["job_id"] == job["id"]
    wake = await outbox("pipelines.runs.queued")
    assert [w["payload"] for w in wake] == [{"run_id": run_id, "org_id": str(world.org_a)}]

    await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-03", "concurrency": 1}
    )
    rows = (await outbox("realtime."))[1:]
    assert [(r["payload"]["table"], r["payload"]["event"]) for r in rows] == [
        ("backfills", "INSERT"),
        ("runs", "INSERT"),
        ("runs", "INSERT"),
        ("runs", "INSERT"),
    ]
    assert list(rows[0]["payload"]["record"]) == BACKFILL_RECORD
    assert rows[0]["payload"]["record"]["partitions"] == 3
    assert [r["payload"]["record"]["status"] for r in rows[1:]] == ["queued", "pending", "pending"]
    assert len(await outbox("pipelines.runs.queued")) == 2  # pending runs do not wake workers

    # what the worker does: a status change and events, each in the transaction of the change
    async with db() as s:
        run = await s.get(Run, uuid.UUID(run_id))
        assert run is not None
        run.status = "dispatched"  # as if claimed (no worker in these tests)
        await s.flush()
        ref = RunRef.of(run)
        assert await lifecycle.start_run(s, ref) is not None
        assert await lifecycle.record_events(s, ref, [events.row(ref, "run_started", message="Run started")])
    rows = (await outbox("realtime."))[5:]
    assert [(r["payload"]["table"], r["payload"]["event"]) for r in rows] == [("runs", "UPDATE"), ("events", "INSERT")]
    assert rows[0]["payload"]["record"]["status"] == "running"
    assert list(rows[1]["payload"]["record"]) == EVENT_RECORD
    assert rows[1]["subject"] == f"realtime.{world.org_a}.events"


async def test_failed_request_writes_no_event(clients, outbox):
    job = await create_job(clients.editor)
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-05", "end_date": "2024-01-01"}
    )
    assert r.status_code == 422
    r = await clients.viewer.post(f"/api/jobs/{job['id']}/run")
    assert r.status_code == 403
    rows = await outbox()
    # Only audit entries (the job's creation, the viewer's refused trigger): no realtime event.
    assert [r for r in rows if not r["subject"].startswith("audit.")] == []
    assert [r["payload"]["outcome"] for r in rows if r["payload"].get("action") == "jobs.run"] == ["denied"]


async def test_published_to_jetstream_on_the_org_subject(clients, relay, nats_client, world):
    js = nats_client.jetstream()
    mine = await js.subscribe(f"realtime.{world.org_a}.>", ordered_consumer=True)
    theirs = await js.subscribe(f"realtime.{world.org_b}.>", ordered_consumer=True)
    job = await create_job(clients.editor)
    run_id = (await clients.editor.post(f"/api/jobs/{job['id']}/run")).json()["run_id"]
    await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-01"}
    )
    while await relay.publish_batch():
        pass
    received = []
    for _ in range(3):
        msg = await mine.next_msg(timeout=5)
        received.append((msg.subject, json.loads(msg.data)))
    assert [(s, m["table"], m["event"]) for s, m in received] == [
        (f"realtime.{world.org_a}.runs", "runs", "INSERT"),
        (f"realtime.{world.org_a}.backfills", "backfills", "INSERT"),
        (f"realtime.{world.org_a}.runs", "runs", "INSERT"),
    ]
    assert received[0][1]["record"]["id"] == run_id
    assert "Nats-Msg-Id" in (msg.headers or {})
    try:
        await theirs.next_msg(timeout=0.3)
        raise AssertionError("org B received org A's changes")
    except TimeoutError:
        pass
    await mine.unsubscribe()
    await theirs.unsubscribe()


async def test_deleting_a_job_publishes_its_runs_and_backfills_detached(clients, outbox, world):
    job = await create_job(clients.editor)
    run_id = (await clients.editor.post(f"/api/jobs/{job['id']}/run")).json()["run_id"]
    backfill_id = (
        await clients.editor.post(
            f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-01"}
        )
    ).json()["backfill_id"]
    before = len(await outbox("realtime."))
    assert (await clients.editor.delete(f"/api/jobs/{job['id']}")).status_code == 200
    rows = (await outbox("realtime."))[before:]
    changes = {
        (r["payload"]["table"], r["payload"]["event"], r["payload"]["record"]["id"], r["payload"]["record"]["job_id"])
        for r in rows
    }
    assert ("runs", "UPDATE", run_id, None) in changes
    assert ("backfills", "UPDATE", backfill_id, None) in changes
    assert len(rows) == 3  # the manual run, the backfill and its run
