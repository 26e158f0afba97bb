"""Run logs (issue 19): what a run's code writes to stdout, stderr and Python `logging`, stored by
the worker and read through `GET /api/runs/{id}/logs`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from .builders import asset_job, post, run
from .conftest import wait_for, wait_run

pytestmark = pytest.mark.usefixtures("cluster")

MAX_BYTES = 200_000  # INTERLOPER_WORKER_RUN_LOG_MAX_BYTES of the test cluster


async def logs_of(client: httpx.AsyncClient, run_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every line, page by page (`after` = the cursor)."""
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await client.get(f"/api/runs/{run_id}/logs", params={"after": after, **params})
        assert r.status_code == 200, r.text
        page = r.json()
        lines += page["items"]
        if page["next_cursor"] is None:
            return lines
        after = page["next_cursor"]


async def test_print_stderr_and_logging_of_a_failing_run_are_stored_in_order(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_chatty", {"fail": True})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"

    lines = await logs_of(org.viewer, run_id)
    by_text = {line["message"]: line for line in lines}
    assert by_text["hello from stdout"]["stream"] == "stdout"
    assert by_text["hello from stderr"]["stream"] == "stderr"
    logged = [line for line in lines if "hello from logging" in line["message"]]
    assert [(x["stream"], x["asset"]) for x in logged] == [("logging", "exec_chatty")]
    assert "WARNING user.code" in logged[0]["message"]
    event_logged = by_text["INFO hello from context.logger"]  # interloper's context.logger (an event)
    assert (event_logged["stream"], event_logged["asset"]) == ("logging", "exec_chatty")
    failure = [line for line in lines if "chatty asset failed on purpose" in line["message"]]
    assert failure and failure[0]["stream"] == "system" and "Traceback" in failure[0]["message"]
    assert any("chatty asset failed on purpose" in line["message"] for line in lines)
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(line["timestamp"] for line in lines)
    # The protocol's end-of-output marks are never stored.
    assert not any("icp-run-output-end" in line["message"] for line in lines)


async def test_a_crash_leaves_the_last_lines_and_a_final_line(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_chatty", {"crash": True})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"

    lines = await logs_of(org.viewer, run_id)
    messages = [line["message"] for line in lines]
    assert "last words before the crash" in messages
    assert lines[-1]["stream"] == "system"
    assert lines[-1]["message"] == "run process exited with signal 9 (SIGKILL)"


async def test_secrets_of_the_run_are_masked(orgs: Any) -> None:
    org = await orgs()
    secret = "tok-3f9a-very-secret"
    connection = await post(
        org.editor,
        "/api/resources/",
        {
            "kind": "connection",
            "key": "exec_secret_connection",
            "name": "S",
            "data": {"user": "alice", "token": secret},
        },
    )
    source = await post(
        org.editor,
        "/api/sources/",
        {"key": "exec_secret_probe", "name": "Probe", "resources": {"connection": connection["id"]}},
    )
    job = await post(org.editor, "/api/jobs/", {"name": "leaky", "cron": "0 3 * * *", "source_ids": [source["id"]]})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"

    lines = await logs_of(org.viewer, run_id)
    messages = [line["message"] for line in lines]
    assert "connecting as alice with ****" in messages
    assert any(m.endswith("token=****") for m in messages)
    assert not any(secret in m for m in messages)


async def test_the_output_is_bounded_with_one_truncation_line(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_chatty", {"bulk": 400})  # ~400 KiB > the bound
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"

    lines = await logs_of(org.viewer, run_id, limit=5000)
    markers = [line for line in lines if line["message"].startswith("[log truncated")]
    assert len(markers) == 1 and markers[0]["stream"] == "system"
    assert lines[-1] == markers[0]  # nothing after the marker
    stored = sum(len(line["message"].encode()) + 1 for line in lines if line is not markers[0])
    assert MAX_BYTES - 1100 < stored <= MAX_BYTES


async def test_pages_follow_the_cursor_and_bad_parameters_are_422(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_chatty", {"bulk": 7})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"

    everything = await logs_of(org.viewer, run_id)
    pages = await logs_of(org.viewer, run_id, limit=2)
    assert pages == everything and len(everything) >= 10
    first = (await org.viewer.get(f"/api/runs/{run_id}/logs", params={"limit": 3})).json()
    assert first["next_cursor"] == first["items"][-1]["seq"] and len(first["items"]) == 3
    rest = (await org.viewer.get(f"/api/runs/{run_id}/logs", params={"after": first["next_cursor"]})).json()
    assert first["items"] + rest["items"] == everything and rest["next_cursor"] is None
    for params in ({"limit": 0}, {"limit": 5001}, {"after": -1}, {"after": "x"}, {"limit": "many"}):
        r = await org.viewer.get(f"/api/runs/{run_id}/logs", params=params)
        assert r.status_code == 422, (params, r.text)
        assert "detail" in r.json()


async def test_logs_of_another_organisations_run_are_404(orgs: Any, exec_db: Any) -> None:
    org, other = await orgs(), await orgs()
    job = await asset_job(org.editor, "exec_chatty")
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    assert (await logs_of(org.viewer, run_id)) != []

    for client, rid in ((other.viewer, run_id), (org.viewer, "00000000-0000-4000-8000-000000000000")):
        r = await client.get(f"/api/runs/{rid}/logs")
        assert r.status_code == 404
        assert r.json() == {"detail": f"Run {rid} not found"}


async def test_logs_are_deleted_with_their_run(orgs: Any, exec_db: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_chatty")
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"

    async def count() -> int:
        async with exec_db() as session:
            return int(
                (await session.execute(text(f"SELECT count(*) FROM run_logs WHERE run_id = '{run_id}'"))).scalar()
            )

    assert await count() > 0
    async with exec_db() as session:
        await session.execute(text(f"DELETE FROM runs WHERE id = '{run_id}'"))
    assert await wait_for(lambda: _zero(count), what="logs gone") is True


async def _zero(count: Any) -> bool | None:
    return True if await count() == 0 else None
