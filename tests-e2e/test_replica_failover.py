"""The stack with several processes per service (`replicated_stack`: `interloper-stack up
--replicas ...`), through Traefik: every replica runs and serves."""

from __future__ import annotations

import httpx

from icp_stack.launcher import SERVICES
from icp_stack.pytest_plugin import StackHandle


def test_every_replica_runs_and_the_stack_answers(replicated_stack: StackHandle) -> None:
    comps = replicated_stack.reload_info()["components"]
    for service in SERVICES:
        names = replicated_stack.replicas(service.name)
        assert len(names) >= 2, service.name
        assert all(comps[n]["state"] == "ready" and comps[n]["pid"] for n in names)
    response = httpx.get(f"{replicated_stack.base_url}/api/health", timeout=30)
    assert response.status_code == 200, response.text
