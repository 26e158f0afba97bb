"""`Idempotency-Key` on the run and backfill triggers: a retried POST replays the first answer
instead of queueing a second run (issue 22: a client retrying after a 502 ran its job twice)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from ..conftest import table_count
from ..factories import create_job

KEY = "Idempotency-Key"


async def test_same_key_same_body_runs_once(clients, db):
    job = await create_job(clients.editor)
    url, body = f"/api/jobs/{job['id']}/run", {"partition_date": "2024-01-02"}
    first = await clients.editor.post(url, json=body, headers={KEY: "retry-1"})
    again = await clients.editor.post(url, json=body, headers={KEY: "retry-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and set(first.json()) == {"status", "run_id"}
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await table_count(db, "runs") == 1
    # a key replays nothing to a caller who may not trigger
    r = await clients.viewer.post(url, json=body, headers={KEY: "retry-1"})
    assert r.status_code == 403


async def test_same_key_other_body_is_refused(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/run"
    assert (
        await clients.editor.post(url, json={"partition_date": "2024-01-02"}, headers={KEY: "k"})
    ).status_code == 200
    for other in ({"partition_date": "2024-01-03"}, None):
        r = await clients.editor.post(url, json=other, headers={KEY: "k"})
        assert (r.status_code, r.json()) == (
            422,
            {"detail": "Idempotency-Key 'k' was already used for a different request"},
        )
    other_job = await create_job(clients.editor, name="other")
    r = await clients.editor.post(
        f"/api/jobs/{other_job['id']}/run", json={"partition_date": "2024-01-02"}, headers={KEY: "k"}
    )
    assert r.status_code == 422
    assert await table_count(db, "runs") == 1


async def test_concurrent_duplicates_create_one_run(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/run"
    answers = await asyncio.gather(*(clients.editor.post(url, headers={KEY: "burst"}) for _ in range(4)))
    assert [r.status_code for r in answers] == [200] * 4
    assert len({r.json()["run_id"] for r in answers}) == 1
    assert await table_count(db, "runs") == 1


async def test_keys_are_per_organisation(clients, db):
    mine, theirs = await create_job(clients.editor), await create_job(clients.other_org)
    a = await clients.editor.post(f"/api/jobs/{mine['id']}/run", headers={KEY: "shared"})
    b = await clients.other_org.post(f"/api/jobs/{theirs['id']}/run", headers={KEY: "shared"})
    assert a.status_code == b.status_code == 200 and a.json()["run_id"] != b.json()["run_id"]
    assert "idempotent-replayed" not in b.headers
    assert await table_count(db, "runs") == 2


async def test_no_key_no_change(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/run"
    first, second = await clients.editor.post(url), await clients.editor.post(url)
    assert first.json()["run_id"] != second.json()["run_id"]
    assert await table_count(db, "runs") == 2 and await table_count(db, "idempotency_keys") == 0


async def test_failed_request_does_not_keep_the_key(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/backfill"
    r = await clients.editor.post(url, json={"start_date": "2024-01-05", "end_date": "2024-01-01"}, headers={KEY: "b"})
    assert r.status_code == 422
    assert await table_count(db, "idempotency_keys") == 0
    body = {"start_date": "2024-01-01", "end_date": "2024-01-03"}
    first = await clients.editor.post(url, json=body, headers={KEY: "b"})
    again = await clients.editor.post(url, json=body, headers={KEY: "b"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert await table_count(db, "backfills") == 1 and await table_count(db, "runs") == 3


async def test_malformed_keys(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/run"
    for key in ("x" * 256, "", "caf\xe9".encode("latin-1"), b"a\x7fb"):
        r = await clients.editor.post(url, headers={KEY: key})
        assert r.status_code == 422, key
        assert r.json()["detail"].startswith("Idempotency-Key must be 1 to 255 printable ASCII characters")
    assert (await clients.editor.post(url, headers={KEY: "~ printable ASCII " + "x" * 237})).status_code == 200
    assert await table_count(db, "runs") == 1


async def test_keys_expire_after_a_day(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/run"
    first = await clients.editor.post(url, headers={KEY: "old"})
    async with db() as s:
        await s.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"))
    again = await clients.editor.post(url, json={"partition_date": "2024-01-02"}, headers={KEY: "old"})
    assert again.status_code == 200 and again.json()["run_id"] != first.json()["run_id"]
    assert await table_count(db, "runs") == 2 and await table_count(db, "idempotency_keys") == 1
