"""`make bench` in miniature (issue 11): the benchmark harness (bench/) against the session's stack
and the reference implementation it installs and starts itself, every scenario for a second or a
few runs. It checks that the harness works end to end and writes its JSON and its report; it never
asserts a timing (those are `make bench`'s figures, on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))

REPO = Path(__file__).resolve().parent.parent
ENDPOINTS = ("health", "me", "sources", "assets", "runs", "jobs", "run", "run-api")


@pytest.mark.timeout(300)
def test_bench_smoke(stack: StackHandle, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--profile",
            "smoke",
            "--attach-stack",
            str(stack.data_dir),
            "--out",
            str(tmp_path),
            "--no-plots",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (result_path,) = tmp_path.glob("*-smoke.json")
    data = json.loads(result_path.read_text())
    assert data["errors"] == [], data["errors"]
    assert data["skipped"] == []
    assert data["seed"]["ours"]["sources"] == data["seed"]["reference"]["sources"] == 3
    assert data["seed"]["ours"]["assets"] == data["seed"]["reference"]["assets"] == 3 * 4 + 1
    assert data["seed"]["ours"]["jobs"] == data["seed"]["reference"]["jobs"] == 1 + 3

    for name in ENDPOINTS:
        for who in ("ours", "reference"):
            cell = data["http"][name]["4"][who]
            assert cell["requests"] > 0, (name, who, cell)
            assert cell["errors"]["status"] == 0, (name, who, cell)  # every timed request was answered 2xx/3xx
    assert data["ceiling"]["requests"] > 0
    for label in ("1", "10"):
        for who in ("ours", "ours-api", "reference"):  # ours-api: our worker held, as the reference's API
            cell = data["realtime"][label][who]
            assert cell["count"] + cell["lost"] == 5, (label, who, cell)
            assert cell["sockets"] == int(label) and cell["socket_open_failures"] == 0
    for who in ("ours", "reference"):
        assert data["execution"]["pickup"][who]["count"] > 0
        assert data["execution"]["throughput"][who]["finished"] > 0
    resources = data["resources"]
    for component in ("ours/gateway", "ours/pipelines", "ours/identity", "reference/api", "reference/postgres"):
        assert resources["idle"][component]["rss_mb"] > 0
    assert resources["phases"]

    report = (tmp_path / result_path.stem / "report.md").read_text()
    for heading in ("## Goals", "## HTTP", "## Realtime", "## Execution", "## Resources per process"):
        assert heading in report
