"""`/api/backfills` (spec 2.12)."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from ..factories import create_job

BACKFILL_KEYS = {
    "id",
    "org_id",
    "job_id",
    "status",
    "start_date",
    "end_date",
    "concurrency",
    "fail_fast",
    "partitions",
    "started_at",
    "completed_at",
    "created_at",
}


async def _backfill(clients, job, start="2024-01-01", end="2024-01-03") -> str:
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": start, "end_date": end, "fail_fast": True}
    )
    return r.json()["backfill_id"]


async def test_list_get_active_only(clients, db, world):
    job = await create_job(clients.editor)
    first = await _backfill(clients, job)
    second = await _backfill(clients, job, "2024-02-01", "2024-02-01")
    body = (await clients.viewer.get(f"/api/backfills/{first}")).json()
    assert set(body) == BACKFILL_KEYS
    assert (body["org_id"], body["job_id"], body["start_date"], body["end_date"], body["fail_fast"]) == (
        str(world.org_a),
        job["id"],
        "2024-01-01",
        "2024-01-03",
        True,
    )
    assert [b["id"] for b in (await clients.viewer.get("/api/backfills/")).json()] == [second, first]
    async with db() as s:
        await s.execute(text("UPDATE backfills SET status = 'success' WHERE id = :id"), {"id": second})
    assert [b["id"] for b in (await clients.viewer.get("/api/backfills/?active_only=true")).json()] == [first]
    assert len((await clients.viewer.get("/api/backfills", follow_redirects=True)).json()) == 2
    assert (await clients.viewer.get("/api/backfills/?active_only=maybe")).status_code == 422


async def test_unknown_and_foreign(clients):
    job = await create_job(clients.editor)
    backfill_id = await _backfill(clients, job)
    r = await clients.other_org.get(f"/api/backfills/{backfill_id}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {backfill_id} not found"})
    assert (await clients.other_org.get("/api/backfills/")).json() == []
    missing = uuid.uuid4()
    r = await clients.viewer.get(f"/api/backfills/{missing}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {missing} not found"})
    assert (await clients.viewer.get("/api/backfills/x")).status_code == 422
