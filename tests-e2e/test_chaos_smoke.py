"""`make chaos` in miniature against the session's stack: the gateway, NATS and a worker are
killed in turn under load (run triggers, invitations, reads, a live /api/ws reader), then the
end state is checked (bench/chaos.py). The full run (every component) is `make chaos`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

# Before any stack starts: the demo catalog, and a reaper quick enough for a killed worker's run.
os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))
os.environ.setdefault("INTERLOPER_REAPER_HEARTBEAT_TIMEOUT", "10")
os.environ.setdefault("INTERLOPER_REAPER_POLL_INTERVAL", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_chaos_smoke(stack: StackHandle) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--attach",
            str(stack.data_dir),
            "--components",
            "gateway,nats,pipelines-worker",
            "--settle",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("CHAOS ")]
    assert proc.returncode == 0 and summary and summary[0].startswith("CHAOS OK"), proc.stdout + proc.stderr[-3000:]
    figures = json.loads(summary[0].split(" ", 2)[2])
    assert figures["runs"] > 0 and figures["invitations"] > 0 and figures["frames"] > 0
    assert set(figures["recovery_s"]) == {"gateway", "nats", "pipelines-worker"}
