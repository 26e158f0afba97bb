"""Every dependency of the service's routes runs on the event loop: a plain `def` one costs a
thread-pool hand-over on each request (issue 17)."""

from __future__ import annotations

from icp_agent.app import create_app
from icp_agent.settings import Settings
from icp_common.web import thread_pool_dependencies


def test_no_dependency_runs_in_the_thread_pool() -> None:
    app = create_app(Settings(internal_secret="thread-pool-test"))  # routes only: no lifespan run
    assert thread_pool_dependencies(app) == set()
