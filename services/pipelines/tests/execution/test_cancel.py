"""`POST /api/runs/{id}/cancel` and `POST /api/backfills/{id}/cancel` (beyond the reference)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .builders import asset_job, backfill, post, run
from .conftest import events_of, pid_in, process_gone, wait_for, wait_run

pytestmark = pytest.mark.usefixtures("cluster")


async def started(client: Any, run_id: str, pid_file: Path) -> int:
    await wait_run(client, run_id, ("running",))
    pid: int = await wait_for(lambda: pid_in(pid_file), 20, what="the asset started")
    return pid


async def test_cancel_a_running_run_terminates_it(orgs: Any, tmp_path: Path) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_slow", {"seconds": 60, "pid_dir": str(tmp_path)})
    run_id = await run(org.editor, job["id"])
    pid = await started(org.viewer, run_id, tmp_path / "slow")

    asked = time.monotonic()
    body = await post(org.editor, f"/api/runs/{run_id}/cancel")
    assert body["id"] == run_id and body["status"] == "canceled" and body["completed_at"]
    await wait_for(lambda: process_gone(pid), 5, what="the run's process ends")
    assert time.monotonic() - asked < 5

    async def settled() -> list[dict[str, Any]] | None:
        found = await events_of(org.viewer, run_id)
        return found if any(e["event_type"] == "asset_canceled" for e in found) else None

    # What the run did before the cancel is kept; its asset is canceled (by the API if its start
    # was already stored, else by the worker when it stops the process).
    events = await wait_for(settled, 5, what="asset_canceled")
    types = [e["event_type"] for e in events]
    assert types[:4] == ["run_started", "asset_queued", "asset_started", "asset_exec_started"]
    assert sorted(types[-2:]) == ["asset_canceled", "log"]
    assert "run_completed" not in types and "asset_completed" not in types
    log_event = next(e for e in events if e["event_type"] == "log" and e["asset_key"] is None)
    assert log_event["message"] == "Run canceled (canceled by editor@example.com)"
    executions = (await org.viewer.get(f"/api/runs/{run_id}/asset-executions")).json()
    assert [(x["asset_key"], x["status"]) for x in executions] == [("exec_slow", "canceled")]
    assert await events_of(org.viewer, run_id) == events  # nothing arrives after the cancel

    r = await org.editor.post(f"/api/runs/{run_id}/cancel")
    assert (r.status_code, r.json()) == (409, {"detail": f"Run {run_id} is already canceled"})
    # The worker's slot is free again: a new run executes.
    quick = await asset_job(org.editor, "exec_daily", {}, partitioned=True)
    assert await wait_run(org.viewer, await run(org.editor, quick["id"], "2024-02-02"), ("success",)) == "success"


async def test_cancel_errors(orgs: Any) -> None:
    org, other = await orgs(), await orgs()
    job = await asset_job(org.editor, "exec_daily", {}, partitioned=True)
    run_id = await run(org.editor, job["id"], "2024-02-01")
    await wait_run(org.viewer, run_id, ("success",))
    r = await org.editor.post(f"/api/runs/{run_id}/cancel")
    assert (r.status_code, r.json()) == (409, {"detail": f"Run {run_id} is already success"})
    r = await org.viewer.post(f"/api/runs/{run_id}/cancel")
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    r = await other.editor.post(f"/api/runs/{run_id}/cancel")
    assert (r.status_code, r.json()) == (404, {"detail": f"Run {run_id} not found"})
    unknown = uuid.uuid4()
    r = await org.editor.post(f"/api/runs/{unknown}/cancel")
    assert (r.status_code, r.json()) == (404, {"detail": f"Run {unknown} not found"})
    r = await org.editor.post("/api/runs/not-a-uuid/cancel")
    assert r.status_code == 422

    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-01")
    await wait_for(lambda: _backfill_is(org.viewer, backfill_id, "success"), 20, what="backfill success")
    r = await org.editor.post(f"/api/backfills/{backfill_id}/cancel")
    assert (r.status_code, r.json()) == (409, {"detail": f"Backfill {backfill_id} is already success"})
    r = await org.viewer.post(f"/api/backfills/{backfill_id}/cancel")
    assert r.status_code == 403
    r = await other.editor.post(f"/api/backfills/{backfill_id}/cancel")
    assert (r.status_code, r.json()) == (404, {"detail": f"Backfill {backfill_id} not found"})


async def _backfill_is(client: Any, backfill_id: str, status: str) -> bool:
    return bool((await client.get(f"/api/backfills/{backfill_id}")).json()["status"] == status)


async def test_cancel_a_pending_run_of_a_backfill_and_then_the_backfill(orgs: Any, tmp_path: Path) -> None:
    org = await orgs()
    config = {"seconds": 60, "slow_on": ["2024-01-01"], "pid_dir": str(tmp_path)}
    job = await asset_job(org.editor, "exec_daily", config, partitioned=True)
    backfill_id = await backfill(org.editor, job["id"], "2024-01-01", "2024-01-04", concurrency=1)
    runs = sorted(
        (await org.viewer.get("/api/runs/", params={"backfill_id": backfill_id})).json(),
        key=lambda r: r["partition_date"],
    )
    assert [r["status"] for r in runs[1:]] == ["pending"] * 3
    pid = await started(org.viewer, runs[0]["id"], tmp_path / "2024-01-01")

    body = await post(org.editor, f"/api/runs/{runs[2]['id']}/cancel")  # waiting: canceled at once
    assert body["status"] == "canceled" and body["backfill_id"] == backfill_id
    assert await events_of(org.viewer, runs[2]["id"]) == []
    statuses = {
        r["id"]: r["status"] for r in (await org.viewer.get("/api/runs/", params={"backfill_id": backfill_id})).json()
    }
    assert statuses[runs[0]["id"]] == "running" and statuses[runs[1]["id"]] == "pending"  # concurrency 1 kept

    body = await post(org.editor, f"/api/backfills/{backfill_id}/cancel")
    assert body["id"] == backfill_id and body["status"] == "canceled" and body["completed_at"]
    after = (await org.viewer.get("/api/runs/", params={"backfill_id": backfill_id})).json()
    assert sorted(r["status"] for r in after) == ["canceled"] * 4
    await wait_for(lambda: process_gone(pid), 5, what="the backfill's running process ends")
    messages = [e["message"] for e in await events_of(org.viewer, runs[0]["id"]) if e["event_type"] == "log"]
    assert messages == ["Run canceled (backfill canceled by editor@example.com)"]
    assert (await org.viewer.get(f"/api/backfills/{backfill_id}")).json()["status"] == "canceled"
