"""Issue 17: a run process is replaced after 1000 runs by default (starting one costs ~0.4 s of
CPU: after every 200 runs that was ~2 ms per trivial run)."""

from __future__ import annotations

import pytest

from icp_pipelines.execution.settings import WorkerSettings


def test_a_run_process_serves_1000_runs_before_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOPER_WORKER_MAX_RUNS_PER_CHILD", raising=False)
    assert WorkerSettings().max_runs_per_child == 1000
    monkeypatch.setenv("INTERLOPER_WORKER_MAX_RUNS_PER_CHILD", "1")
    assert WorkerSettings().max_runs_per_child == 1  # still a fresh process per run when asked
