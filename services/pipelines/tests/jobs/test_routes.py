"""`/api/jobs` (spec 2.10): cron validation, scoped links, run and backfill triggers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from ..conftest import table_count
from ..factories import create_job, create_source, create_standalone_asset

DB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00$")
JOB_KEYS = {
    "id",
    "org_id",
    "name",
    "cron",
    "tags",
    "enabled",
    "partitioned",
    "backfill_days",
    "source_ids",
    "asset_ids",
    "last_run_at",
    "next_run_at",
    "created_at",
}


async def test_create_get_list(clients, world):
    source = await create_source(clients.editor)
    asset = await create_standalone_asset(clients.editor)
    job = await create_job(
        clients.editor,
        source_ids=[source["id"]],
        asset_ids=[asset["id"]],
        tags=["daily"],
        partitioned=True,
        backfill_days=3,
    )
    assert set(job) == JOB_KEYS
    assert job["org_id"] == str(world.org_a)
    assert (job["source_ids"], job["asset_ids"], job["tags"], job["enabled"], job["backfill_days"]) == (
        [source["id"]],
        [asset["id"]],
        ["daily"],
        True,
        3,
    )
    assert job["last_run_at"] is None
    assert DB_TIME.match(job["next_run_at"]) and job["next_run_at"].endswith("03:00:00+00:00")
    assert (await clients.viewer.get(f"/api/jobs/{job['id']}")).json() == job
    assert (await clients.viewer.get("/api/jobs/")).json() == [job]
    r = await clients.editor.post("/api/jobs/", json={"name": "ui", "cron": "* * * * *", "backfill_days": ""})
    assert r.status_code == 200 and r.json()["backfill_days"] is None


async def test_update_is_a_full_replacement_and_reschedules(clients):
    source = await create_source(clients.editor)
    asset = await create_standalone_asset(clients.editor)
    job = await create_job(
        clients.editor,
        source_ids=[source["id"]],
        asset_ids=[asset["id"]],
        tags=["t"],
        enabled=False,
        partitioned=True,
        backfill_days=7,
    )
    # Spec 2.10: omitted lists become empty, omitted flags take their defaults.
    r = await clients.editor.put(f"/api/jobs/{job['id']}", json={"name": "Renamed", "cron": "0 3 * * *"})
    assert r.status_code == 200
    replaced = r.json()
    assert {k: replaced[k] for k in ("name", "source_ids", "asset_ids", "tags", "enabled", "partitioned")} == {
        "name": "Renamed",
        "source_ids": [],
        "asset_ids": [],
        "tags": [],
        "enabled": True,
        "partitioned": False,
    }
    assert replaced["backfill_days"] is None and replaced["next_run_at"].endswith("03:00:00+00:00")
    assert (await clients.viewer.get(f"/api/jobs/{job['id']}")).json() == replaced
    # What the web UI sends (everything but asset_ids) is applied as sent.
    ui_body = {
        "name": "R",
        "cron": "30 5 * * *",
        "source_ids": [source["id"]],
        "tags": ["a"],
        "enabled": False,
        "partitioned": True,
        "backfill_days": "",
    }
    r = await clients.editor.put(f"/api/jobs/{job['id']}", json=ui_body)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("source_ids", "asset_ids", "tags", "enabled", "partitioned", "backfill_days")} == {
        "source_ids": [source["id"]],
        "asset_ids": [],
        "tags": ["a"],
        "enabled": False,
        "partitioned": True,
        "backfill_days": None,
    }
    assert r.json()["next_run_at"] is None
    r = await clients.editor.put(
        f"/api/jobs/{job['id']}", json={**ui_body, "enabled": True, "asset_ids": [asset["id"]]}
    )
    assert r.json()["next_run_at"].endswith("05:30:00+00:00") and r.json()["asset_ids"] == [asset["id"]]
    r = await clients.editor.put(f"/api/jobs/{job['id']}", json={**ui_body, "source_ids": None, "tags": None})
    assert r.json()["source_ids"] == [] and r.json()["tags"] == []


async def test_validation(clients, db):
    for cron in ("not a cron", "", "61 * * * *", "* * * * * *", "*/5 * * * * *", "0 0 1 1 * 2030"):
        r = await clients.editor.post("/api/jobs/", json={"name": "bad", "cron": cron})
        assert (r.status_code, r.json()) == (422, {"detail": f"Invalid cron expression: '{cron}'"})
    r = await clients.editor.post("/api/jobs/", json={"name": "bad"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "cron"]
    r = await clients.editor.post("/api/jobs/", json={"name": "bad", "cron": "* * * * *", "backfill_days": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "backfill_days"]
    missing = uuid.uuid4()
    r = await clients.editor.post("/api/jobs/", json={"name": "x", "cron": "* * * * *", "source_ids": [str(missing)]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Source {missing} not found"})
    r = await clients.editor.post("/api/jobs/", json={"name": "x", "cron": "* * * * *", "asset_ids": [str(missing)]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Asset {missing} not found"})
    r = await clients.editor.post("/api/jobs/", json={"name": "x", "cron": "* * * * *", "asset_ids": ["nope"]})
    assert r.status_code == 422
    job = await create_job(clients.editor)
    for cron in ("nope", "* * * * * *"):
        r = await clients.editor.put(f"/api/jobs/{job['id']}", json={"name": "x", "cron": cron})
        assert (r.status_code, r.json()) == (422, {"detail": f"Invalid cron expression: '{cron}'"})
    assert await table_count(db, "jobs") == 1


async def test_run_trigger(clients, db):
    job = await create_job(clients.editor)
    for kwargs in ({}, {"json": None}, {"json": {}}, {"json": {"partition_date": "2024-01-02"}}):
        r = await clients.editor.post(f"/api/jobs/{job['id']}/run", **kwargs)
        assert r.status_code == 200, (kwargs, r.text)
        assert set(r.json()) == {"status", "run_id"} and r.json()["status"] == "queued"
    runs = (await clients.viewer.get(f"/api/runs/?job_id={job['id']}")).json()
    assert [r["partition_date"] for r in runs] == ["2024-01-02", None, None, None]
    assert {r["status"] for r in runs} == {"queued"}
    last_run_at = (await clients.viewer.get(f"/api/jobs/{job['id']}")).json()["last_run_at"]
    assert DB_TIME.match(last_run_at)
    assert datetime.fromisoformat(last_run_at) <= datetime.now(UTC)
    r = await clients.editor.post(f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-13-01"})
    assert r.status_code == 422
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/run", content=b'{"partition_date": null}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 422
    missing = uuid.uuid4()
    r = await clients.editor.post(f"/api/jobs/{missing}/run")
    assert (r.status_code, r.json()) == (404, {"detail": f"Job {missing} not found"})
    assert await table_count(db, "runs") == 4


async def test_backfill_trigger(clients, db):
    job = await create_job(clients.editor)
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-05", "concurrency": 2}
    )
    assert r.status_code == 200
    assert set(r.json()) == {"status", "backfill_id"} and r.json()["status"] == "queued"
    backfill_id = r.json()["backfill_id"]
    backfill = (await clients.viewer.get(f"/api/backfills/{backfill_id}")).json()
    assert (backfill["status"], backfill["partitions"], backfill["concurrency"], backfill["fail_fast"]) == (
        "running",
        5,
        2,
        False,
    )
    assert DB_TIME.match(backfill["started_at"]) and backfill["completed_at"] is None
    runs = (await clients.viewer.get(f"/api/runs?backfill_id={backfill_id}", follow_redirects=True)).json()
    by_date = {r["partition_date"]: r["status"] for r in runs}
    assert by_date == {
        "2024-01-01": "queued",
        "2024-01-02": "queued",
        "2024-01-03": "pending",
        "2024-01-04": "pending",
        "2024-01-05": "pending",
    }
    assert [r["partition_date"] for r in runs] == sorted(by_date, reverse=True)  # newest first
    assert (await clients.viewer.get(f"/api/jobs/{job['id']}")).json()["last_run_at"] is not None


async def test_backfill_validation(clients, db):
    job = await create_job(clients.editor)
    url = f"/api/jobs/{job['id']}/backfill"
    r = await clients.editor.post(url, json={"start_date": "2024-01-05", "end_date": "2024-01-01"})
    assert (r.status_code, r.json()) == (422, {"detail": "end_date 2024-01-01 is before start_date 2024-01-05"})
    r = await clients.editor.post(url, json={"start_date": "2024-01-01", "end_date": "2024-01-01", "concurrency": 0})
    assert (r.status_code, r.json()) == (422, {"detail": "concurrency must be at least 1"})
    r = await clients.editor.post(url, json={"start_date": "2000-01-01", "end_date": "2024-01-01"})
    assert (r.status_code, r.json()) == (422, {"detail": "A backfill covers at most 3660 days (got 8767)"})
    r = await clients.editor.post(url, json={"start_date": "2024-01-01"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "end_date"]
    missing = uuid.uuid4()
    r = await clients.editor.post(
        f"/api/jobs/{missing}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-01"}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Job {missing} not found"})
    assert await table_count(db, "backfills") == 0 and await table_count(db, "runs") == 0


async def test_delete_keeps_runs(clients, db):
    job = await create_job(clients.editor)
    run_id = (await clients.editor.post(f"/api/jobs/{job['id']}/run")).json()["run_id"]
    r = await clients.editor.delete(f"/api/jobs/{job['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    assert (await clients.viewer.get(f"/api/runs/{run_id}")).json()["job_id"] is None
    r = await clients.editor.delete(f"/api/jobs/{job['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Job {job['id']} not found"})


async def test_other_organisation(clients, db):
    job = await create_job(clients.editor)
    detail = {"detail": f"Job {job['id']} not found"}
    calls = [
        ("get", f"/api/jobs/{job['id']}", None),
        ("put", f"/api/jobs/{job['id']}", {"name": "x", "cron": "* * * * *"}),
        ("delete", f"/api/jobs/{job['id']}", None),
        ("post", f"/api/jobs/{job['id']}/run", None),
        ("post", f"/api/jobs/{job['id']}/backfill", {"start_date": "2024-01-01", "end_date": "2024-01-02"}),
    ]
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        r = await getattr(clients.other_org, method)(url, **kwargs)
        assert (r.status_code, r.json()) == (404, detail), url
    assert (await clients.other_org.get("/api/jobs/")).json() == []
    source = await create_source(clients.editor)
    asset = await create_standalone_asset(clients.editor)
    r = await clients.other_org.post(
        "/api/jobs/", json={"name": "x", "cron": "* * * * *", "source_ids": [source["id"]]}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Source {source['id']} not found"})
    r = await clients.other_org.post("/api/jobs/", json={"name": "x", "cron": "* * * * *", "asset_ids": [asset["id"]]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Asset {asset['id']} not found"})
    assert await table_count(db, "runs") == 0 and await table_count(db, "jobs") == 1


async def test_values_the_database_refuses_are_422(clients, db):
    r = await clients.editor.post("/api/jobs/", json={"name": "nul\u0000byte", "cron": "* * * * *"})
    assert (r.status_code, r.json()) == (422, {"detail": "Invalid value: not accepted by the database"})
    job = await create_job(clients.editor)
    r = await clients.editor.post(
        f"/api/jobs/{job['id']}/backfill",
        json={"start_date": "2024-01-01", "end_date": "2024-01-01", "concurrency": 10**12},
    )
    assert r.status_code == 422
    assert (await clients.viewer.get("/api/runs/?offset=100000000000000")).status_code == 422
    assert await table_count(db, "jobs") == 1


async def test_update_clears_backfill_days_when_omitted_or_sent_empty(clients):
    job = await create_job(clients.editor, partitioned=True, backfill_days=7)
    for body in ({}, {"backfill_days": None}, {"backfill_days": ""}):
        r = await clients.editor.put(
            f"/api/jobs/{job['id']}", json={"name": "x", "cron": "0 3 * * *", "backfill_days": 5}
        )
        assert r.json()["backfill_days"] == 5
        r = await clients.editor.put(f"/api/jobs/{job['id']}", json={"name": "x", "cron": "0 3 * * *", **body})
        assert r.json()["backfill_days"] is None
