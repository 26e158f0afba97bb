"""Audit entries of the pipelines API (issue 18.3): written to the outbox by the write's own
transaction (a refused or failed write leaves none), once per action (an idempotent replay adds
none), with ids only (never resource data)."""

from __future__ import annotations

import uuid

from .conftest import outbox_rows
from .factories import create_job


async def audits(db) -> list[dict]:
    return [m["payload"] for m in await outbox_rows(db, "audit.")]


async def test_a_write_and_its_entry_commit_together(clients, db):
    job = await create_job(clients.editor)
    [entry] = await audits(db)
    assert (entry["action"], entry["target"], entry["outcome"]) == (
        "jobs.create",
        {"type": "job", "id": job["id"]},
        "success",
    )
    assert entry["actor"] == {"type": "user", "id": entry["actor"]["id"], "email": "editor@example.com"}
    # A failed write (unknown job: 404; bad cron: 422) rolls back and records nothing.
    r = await clients.editor.put(f"/api/jobs/{uuid.uuid4()}", json={"name": "x", "cron": "* * * * *"})
    assert r.status_code == 404
    r = await clients.editor.put(f"/api/jobs/{job['id']}", json={"name": "x", "cron": "not a cron"})
    assert r.status_code == 422
    assert [e["action"] for e in await audits(db)] == ["jobs.create"]


async def test_an_idempotent_replay_records_nothing_more(clients, db):
    body = {"name": "nightly", "cron": "0 3 * * *"}
    first = await clients.editor.post("/api/jobs/", json=body, headers={"Idempotency-Key": "k-1"})
    again = await clients.editor.post("/api/jobs/", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.json() == again.json()
    assert [e["action"] for e in await audits(db)] == ["jobs.create"]


async def test_no_resource_data_in_an_entry(clients, db):
    secret = f"s3cret-{uuid.uuid4().hex}"
    body = {"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": secret}}
    created = await clients.editor.post("/api/resources/", json=body)
    assert created.status_code == 200, created.text
    updated = await clients.editor.put(f"/api/resources/{created.json()['id']}", json=body)
    assert updated.status_code == 200, updated.text
    rows = await outbox_rows(db, "audit.")
    assert [m["payload"]["action"] for m in rows] == ["resources.create", "resources.update"]
    assert secret not in repr(rows)
