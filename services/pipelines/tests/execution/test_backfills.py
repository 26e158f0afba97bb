"""Backfills advanced by the workers and the scheduler (spec 6.3 with the fixes of 12.2 #18),
fail_fast, and `POST /api/backfills/{id}/retry-failed`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from .builders import asset_job, backfill, post
from .conftest import events_of, pid_in, process_gone, wait_for

pytestmark = pytest.mark.usefixtures("cluster")


async def backfill_status(client: Any, backfill_id: str, statuses: tuple[str, ...], timeout: float = 20) -> dict:
    async def probe() -> dict | None:
        body: dict = (await client.get(f"/api/backfills/{backfill_id}")).json()
        return body if body["status"] in statuses else None

    result: dict = await wait_for(probe, timeout, what=f"backfill {backfill_id} in {statuses}")
    return result


async def runs_of(client: Any, backfill_id: str) -> list[dict]:
    runs: list[dict] = (await client.get("/api/runs/", params={"backfill_id": backfill_id})).json()
    return sorted(runs, key=lambda r: (r["partition_date"], r["created_at"]))


async def test_concurrency_is_respected_and_the_backfill_succeeds(orgs: Any, exec_db: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_daily", {"seconds": 0.3}, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-05", concurrency=2)
    done = await backfill_status(org.viewer, backfill_id, ("success", "failed", "canceled"))
    assert done["status"] == "success" and done["completed_at"] and done["partitions"] == 5
    runs = await runs_of(org.viewer, backfill_id)
    assert [r["status"] for r in runs] == ["success"] * 5
    assert [r["partition_date"] for r in runs] == [f"2024-01-0{d}" for d in range(1, 6)]
    async with exec_db() as s:
        spans = (
            await s.execute(
                text("SELECT dispatched_at, completed_at FROM runs WHERE backfill_id = :b"),
                {"b": uuid.UUID(backfill_id)},
            )
        ).all()
    # The most runs in flight at any instant (a promoted run is dispatched after its predecessor ended).
    marks = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda m: (m[0], m[1]))
    inflight = peak = 0
    for _, step in marks:
        inflight += step
        peak = max(peak, inflight)
    assert peak == 2


async def test_fail_fast_cancels_the_rest_including_running_runs(orgs: Any, tmp_path: Path) -> None:
    org = await orgs()
    config = {"fail_on": ["2024-01-01"], "slow_on": ["2024-01-02"], "seconds": 30, "pid_dir": str(tmp_path)}
    job = await asset_job(org.editor, "exec_daily", config, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-05", concurrency=2, fail_fast=True)
    done = await backfill_status(org.viewer, backfill_id, ("success", "failed", "canceled"))
    assert done["status"] == "failed"
    runs = await runs_of(org.viewer, backfill_id)
    assert [(r["partition_date"], r["status"]) for r in runs] == [
        ("2024-01-01", "failed"),
        ("2024-01-02", "canceled"),
        ("2024-01-03", "canceled"),
        ("2024-01-04", "canceled"),
        ("2024-01-05", "canceled"),
    ]
    assert all(r["completed_at"] for r in runs)
    # The run that was executing was stopped, and says why.
    second = runs[1]
    events = await events_of(org.viewer, second["id"])
    if second["started_at"]:
        reasons = [e["message"] for e in events if e["event_type"] == "log"]
        assert reasons == ["Run canceled (fail_fast: partition 2024-01-01 failed)"]
    pid = pid_in(tmp_path / "2024-01-02")
    if pid is not None:
        await wait_for(lambda: process_gone(pid), 5, what="the run's process ends")
    for r in runs[2:]:
        assert await events_of(org.viewer, r["id"]) == []


async def test_retry_failed_requeues_only_failed_and_canceled_partitions(orgs: Any) -> None:
    org, other = await orgs(), await orgs()
    job = await asset_job(org.editor, "exec_daily", {"fail_on": ["2024-01-02", "2024-01-03"]}, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-04", concurrency=4)
    assert (await backfill_status(org.viewer, backfill_id, ("success", "failed")))["status"] == "failed"
    first = await runs_of(org.viewer, backfill_id)
    assert [r["status"] for r in first] == ["success", "failed", "failed", "success"]

    # Nothing else may touch it: viewer, another organisation, unknown id.
    r = await org.viewer.post(f"/api/backfills/{backfill_id}/retry-failed")
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    r = await other.editor.post(f"/api/backfills/{backfill_id}/retry-failed")
    assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {backfill_id} not found"})
    unknown = uuid.uuid4()
    r = await org.editor.post(f"/api/backfills/{unknown}/retry-failed")
    assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {unknown} not found"})

    r = await org.editor.put(f"/api/assets/{job['asset']['id']}", json={"config": {"fail_on": ["2024-01-03"]}})
    assert r.status_code == 200, r.text
    body = await post(org.editor, f"/api/backfills/{backfill_id}/retry-failed")
    assert body["id"] == backfill_id and body["status"] == "running" and body["completed_at"] is None
    assert (await backfill_status(org.viewer, backfill_id, ("success", "failed")))["status"] == "failed"
    second = await runs_of(org.viewer, backfill_id)
    assert len(second) == 6  # two new runs; the successful partitions were not run again
    assert [(r["partition_date"], r["status"]) for r in second if r["id"] not in {x["id"] for x in first}] == [
        ("2024-01-02", "success"),
        ("2024-01-03", "failed"),
    ]

    r = await org.editor.put(f"/api/assets/{job['asset']['id']}", json={"config": {}})
    assert r.status_code == 200
    await post(org.editor, f"/api/backfills/{backfill_id}/retry-failed")
    assert (await backfill_status(org.viewer, backfill_id, ("success", "failed")))["status"] == "success"
    r = await org.editor.post(f"/api/backfills/{backfill_id}/retry-failed")
    assert (r.status_code, r.json()) == (409, {"detail": f"Backfill {backfill_id} has no failed or canceled runs"})
    assert len(await runs_of(org.viewer, backfill_id)) == 7
