"""Every dependency of the service's routes runs on the event loop: a plain `def` one costs a
thread-pool hand-over on each request (issue 17)."""

from __future__ import annotations

from fastapi import FastAPI

from icp_common.web import thread_pool_dependencies


def test_no_dependency_runs_in_the_thread_pool(app: FastAPI) -> None:
    assert thread_pool_dependencies(app) == set()
