"""The benchmark with `--replicas` (issue 20): holding "the worker" for the API-only scenario
(`run-api`) must stop every worker replica, and the report adds each replica to its service's
CPU column. Real processes stand in for the workers (nothing here starts a stack)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

# The harness is a top-level package of the repository (python -m bench), not an installed one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report
from bench.targets import OursTarget


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def _status(pid: int) -> str:
    deadline = time.monotonic() + 5
    status = psutil.Process(pid).status()
    while status != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.05)
        status = psutil.Process(pid).status()
    return str(status)


def test_hold_worker_stops_every_worker_replica(tmp_path: Path, workers: list[subprocess.Popen[bytes]]) -> None:
    names = ["pipelines-worker", "pipelines-worker-2", "pipelines-worker-3"]
    stack = {
        "components": {name: {"pid": p.pid} for name, p in zip(names, workers, strict=True)},
        "replicas": {"pipelines-worker": names},
    }
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    target = OursTarget("ours", "http://127.0.0.1:1", "postgresql://unused", data_dir=tmp_path)
    target.hold_worker()
    try:
        assert [_status(p.pid) for p in workers] == [psutil.STATUS_STOPPED] * 3
    finally:
        target.release_worker()
    assert all(psutil.Process(p.pid).status() != psutil.STATUS_STOPPED for p in workers)


def test_report_adds_replicas_to_their_service() -> None:
    per = {"gateway": 1.0, "gateway-2": 0.5, "pipelines-worker-3": 2.0, "traefik-internal": 0.25, "postgres": 1.0}
    assert report._folded(per) == {"gateway": 1.5, "pipelines-worker": 2.0, "traefik-internal": 0.25, "postgres": 1.0}
