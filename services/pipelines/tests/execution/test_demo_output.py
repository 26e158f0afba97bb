"""Issue 15 #9: the demo CSV destination writes only inside `<data dir>/demo-output/<org id>/`,
through real worker and run processes. A `base_path` leaving it (stored before the API refused
it, or through a symlink) fails the run and writes nothing elsewhere; two organisations with the
same `base_path` never share files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from .builders import demo_job, run
from .conftest import events_of, wait_run

pytestmark = pytest.mark.usefixtures("cluster")

DAY = "2024-03-01"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def notes(csv_file: Path) -> set[str]:
    with csv_file.open(newline="") as f:
        return {row["note"] for row in csv.DictReader(f)}


async def test_two_organisations_with_the_same_base_path_write_to_their_own_directories(
    orgs: Any, exec_data_dir: Path
) -> None:
    alpha, beta = await orgs(), await orgs()
    runs = []
    for org, greeting in ((alpha, "from alpha"), (beta, "from beta")):
        job, _ = await demo_job(org.editor, "shared", greeting)
        runs.append((org, await run(org.editor, job["id"], DAY)))
    for org, run_id in runs:
        assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    for org, greeting in ((alpha, "from alpha"), (beta, "from beta")):
        events = exec_data_dir / "demo-output" / str(org.org_id) / "shared" / "demo_source" / "events"
        assert notes(events / f"date={DAY}" / "data.csv") == {greeting}


async def _fails_without_writing(org: Any, job: dict[str, Any]) -> str:
    run_id = await run(org.editor, job["id"], DAY)
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "failed"
    failures = [e for e in await events_of(org.viewer, run_id) if e["event_type"] in ("asset_failed", "run_failed")]
    return json.dumps([e["error"] for e in failures])


@pytest.mark.parametrize("escape", ["absolute", "dot-dot", "other-org"])
async def test_a_stored_base_path_leaving_the_organisation_fails_the_run(
    orgs: Any, exec_db: Any, exec_data_dir: Path, tmp_path: Path, escape: str
) -> None:
    org, other = await orgs(), await orgs()
    job, _ = await demo_job(org.editor)
    outside = tmp_path / "evil"
    base_path = {
        "absolute": str(outside),
        "dot-dot": "../../../" + str(outside).lstrip("/"),
        "other-org": f"../{other.org_id}",
    }[escape]
    # Written behind the API's back (as a row saved before the API refused such paths).
    async with exec_db() as s:
        await s.execute(
            text("UPDATE destinations SET config = CAST(:c AS jsonb) WHERE org_id = :o"),
            {"c": json.dumps({"base_path": base_path}), "o": org.org_id},
        )
    errors = await _fails_without_writing(org, job)
    assert "inside the organisation's demo output directory" in errors, errors
    assert files_under(outside) == []
    assert files_under(exec_data_dir / "demo-output" / str(other.org_id)) == []
    assert files_under(exec_data_dir / "demo-output" / str(org.org_id)) == []


async def test_a_symlink_out_of_the_organisation_directory_is_refused(
    orgs: Any, exec_data_dir: Path, tmp_path: Path
) -> None:
    org = await orgs()
    outside = tmp_path / "outside"
    outside.mkdir()
    root = exec_data_dir / "demo-output" / str(org.org_id)
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    job, _ = await demo_job(org.editor, "link")
    errors = await _fails_without_writing(org, job)
    assert "base_path 'link' leaves the organisation's directory" in errors, errors
    assert files_under(outside) == []
