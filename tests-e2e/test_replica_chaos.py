"""`make chaos` against the replicated stack (`replicated_stack`: two processes per service): one
replica of every service is killed (SIGKILL) in turn under load (run triggers, invitations,
reads, a live /api/ws reader). With a sibling up the whole time, no request may get a 503, and
no run, frame or e-mail may be lost (bench/chaos.py --replicated checks the end state)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.launcher import SERVICES
from icp_stack.pytest_plugin import StackHandle

# Before any stack starts: the demo catalog, and a reaper quick enough for a killed worker's run.
os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))
os.environ.setdefault("INTERLOPER_REAPER_HEARTBEAT_TIMEOUT", "10")
os.environ.setdefault("INTERLOPER_REAPER_POLL_INTERVAL", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(400)
def test_killing_one_replica_of_each_service_loses_nothing(replicated_stack: StackHandle) -> None:
    victims = [service.name for service in SERVICES]  # replica 1 of each; its sibling stays up
    assert all(len(replicated_stack.replicas(name)) >= 2 for name in victims)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--attach",
            str(replicated_stack.data_dir),
            "--components",
            ",".join(victims),
            "--settle",
            "2",
            "--replicated",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("CHAOS ")]
    assert proc.returncode == 0 and summary and summary[0].startswith("CHAOS OK"), proc.stdout + proc.stderr[-3000:]
    figures = json.loads(summary[0].split(" ", 2)[2])
    assert figures["runs"] > 0 and figures["invitations"] > 0 and figures["frames"] > 0
    assert set(figures["recovery_s"]) == set(victims)
