"""`/api/runs` (spec 2.11): filters, pagination, events with a cursor, asset executions, scoping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from icp_pipelines.runs import lifecycle

from ..factories import create_job

RUN_KEYS = {
    "id",
    "org_id",
    "job_id",
    "backfill_id",
    "partition_date",
    "status",
    "started_at",
    "completed_at",
    "created_at",
}
EVENT_KEYS = {
    "id",
    "org_id",
    "run_id",
    "event_type",
    "asset_id",
    "asset_key",
    "partition_or_window",
    "error",
    "traceback",
    "message",
    "timestamp",
}
EXECUTION_KEYS = {"run_id", "org_id", "asset_id", "asset_key", "status", "started_at", "completed_at", "created_at"}


async def _runs(clients, count: int, **body) -> tuple[dict, list[str]]:
    job = await create_job(clients.editor)
    ids = []
    for _ in range(count):
        ids.append((await clients.editor.post(f"/api/jobs/{job['id']}/run", json=body or None)).json()["run_id"])
    return job, ids


async def test_get_and_list(clients, world):
    job, ids = await _runs(clients, 3)
    run = (await clients.viewer.get(f"/api/runs/{ids[0]}")).json()
    assert set(run) == RUN_KEYS
    assert (run["org_id"], run["job_id"], run["status"], run["backfill_id"], run["partition_date"]) == (
        str(world.org_a),
        job["id"],
        "queued",
        None,
        None,
    )
    listed = (await clients.viewer.get("/api/runs/")).json()
    assert [r["id"] for r in listed] == ids[::-1]
    assert listed[-1] == run
    r = await clients.viewer.get("/api/runs", follow_redirects=False)
    assert (r.status_code, r.json()) == (200, listed)  # no redirect (issue 23)


async def test_filters_and_pagination(clients, db):
    _, ids = await _runs(clients, 5)
    other_job, other_ids = await _runs(clients, 2)
    newest_first = (ids + other_ids)[::-1]
    page = lambda q: clients.viewer.get(f"/api/runs/?{q}")  # noqa: E731
    assert [r["id"] for r in (await page("limit=3")).json()] == newest_first[:3]
    assert [r["id"] for r in (await page("limit=3&offset=3")).json()] == newest_first[3:6]
    assert (await page("limit=0")).json() == []
    assert [r["id"] for r in (await page(f"job_id={other_job['id']}")).json()] == other_ids[::-1]
    async with db() as s:
        await s.execute(text("UPDATE runs SET status = 'failed' WHERE id = :id"), {"id": ids[0]})
    assert [r["id"] for r in (await page("status=failed")).json()] == [ids[0]]
    assert (await page("status=bogus")).json() == []
    for query, loc in (
        ("limit=-1", "limit"),
        ("offset=-1", "offset"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("job_id=nope", "job_id"),
        ("backfill_id=nope", "backfill_id"),
    ):
        r = await page(query)
        assert r.status_code == 422, query
        assert r.json()["detail"][0]["loc"] == ["query", loc]


async def test_default_limit_and_backfill_lists_everything(clients):
    job = await create_job(clients.editor)
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-03-01"}
    )
    backfill_id = r.json()["backfill_id"]
    assert len((await clients.viewer.get("/api/runs/")).json()) == 50
    assert len((await clients.viewer.get(f"/api/runs/?backfill_id={backfill_id}")).json()) == 61
    assert len((await clients.viewer.get(f"/api/runs/?backfill_id={backfill_id}&limit=10")).json()) == 10


async def _events(db, org_id, run_id, count: int) -> list[uuid.UUID]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    values = [
        {
            "org_id": org_id,
            "run_id": uuid.UUID(run_id),
            "event_type": "log",
            "message": f"m{i}",
            "timestamp": base + timedelta(seconds=i),
        }
        for i in range(count)
    ]
    async with db() as s:
        rows = await lifecycle.insert_events(s, values)
    return [r.id for r in rows]


async def test_events_all_by_default_and_cursor(clients, db, world):
    _, (run_id,) = await _runs(clients, 1)
    event_ids = [str(e) for e in await _events(db, world.org_a, run_id, 150)]
    events = (await clients.viewer.get(f"/api/runs/{run_id}/events")).json()
    assert [e["id"] for e in events] == event_ids  # all of them, oldest first (the UI sends no limit)
    assert set(events[0]) == EVENT_KEYS
    assert events[0]["timestamp"] == "2026-01-01 00:00:00+00:00"
    assert events[1]["message"] == "m1" and events[1]["run_id"] == run_id
    first = (await clients.viewer.get(f"/api/runs/{run_id}/events?limit=100")).json()
    assert [e["id"] for e in first] == event_ids[:100]
    rest = (await clients.viewer.get(f"/api/runs/{run_id}/events?limit=100&after={first[-1]['id']}")).json()
    assert [e["id"] for e in rest] == event_ids[100:]
    missing = uuid.uuid4()
    r = await clients.viewer.get(f"/api/runs/{run_id}/events?after={missing}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Event {missing} not found in run {run_id}"})
    for query in ("limit=-1", "after=nope"):
        assert (await clients.viewer.get(f"/api/runs/{run_id}/events?{query}")).status_code == 422


async def test_asset_executions(clients, db, world):
    _, (run_id,) = await _runs(clients, 1)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for asset, key, types in (
        (a, "a", ["asset_queued", "asset_started", "asset_completed"]),
        (b, "b", ["asset_queued", "asset_started", "asset_failed"]),
        (c, "c", ["asset_queued", "asset_canceled"]),
    ):
        for i, event_type in enumerate(types):
            rows.append(
                {
                    "org_id": world.org_a,
                    "run_id": uuid.UUID(run_id),
                    "event_type": event_type,
                    "asset_id": asset,
                    "asset_key": key,
                    "timestamp": t + timedelta(seconds=i),
                }
            )
    rows.append(
        {"org_id": world.org_a, "run_id": uuid.UUID(run_id), "event_type": "log", "asset_key": "a", "timestamp": t}
    )
    async with db() as s:
        await lifecycle.insert_events(s, rows)
    executions = (await clients.viewer.get(f"/api/runs/{run_id}/asset-executions")).json()
    assert all(set(e) == EXECUTION_KEYS for e in executions)
    by_key = {e["asset_key"]: e for e in executions}
    assert {k: e["status"] for k, e in by_key.items()} == {"a": "success", "b": "failed", "c": "canceled"}
    assert by_key["a"]["created_at"] == "2026-01-01 00:00:00+00:00"
    assert by_key["a"]["started_at"] == "2026-01-01 00:00:01+00:00"
    assert by_key["a"]["completed_at"] == "2026-01-01 00:00:02+00:00"
    assert by_key["c"]["started_at"] is None
    assert by_key["a"]["run_id"] == run_id and by_key["a"]["org_id"] == str(world.org_a)


async def test_unknown_and_foreign_runs(clients, db, world):
    _, (run_id,) = await _runs(clients, 1)
    await _events(db, world.org_a, run_id, 2)
    missing = uuid.uuid4()
    for rid in (run_id, str(missing)):
        for suffix in ("", "/events", "/asset-executions"):
            client = clients.other_org if rid == run_id else clients.viewer
            r = await client.get(f"/api/runs/{rid}{suffix}")
            assert (r.status_code, r.json()) == (404, {"detail": f"Run {rid} not found"}), suffix
    assert (await clients.other_org.get("/api/runs/")).json() == []
    assert (await clients.viewer.get("/api/runs/nope")).status_code == 422
