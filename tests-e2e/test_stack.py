"""The stack as a whole, through Traefik: health, what runs where, and recovery of a killed
service."""

from __future__ import annotations

import time

import httpx

from icp_stack.launcher import COMPONENTS
from icp_stack.pytest_plugin import StackHandle


def test_api_health_through_traefik(api: httpx.Client) -> None:
    resp = api.get("/api/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    # Set by Traefik's middlewares (deploy/traefik/dynamic.yml).
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"


def test_stack_json_describes_every_component(stack: StackHandle) -> None:
    info = stack.reload_info()
    assert info["public_url"] == stack.base_url
    assert set(info["components"]) <= set(COMPONENTS)
    for name, comp in info["components"].items():
        assert comp["pid"], name
        assert comp["state"] == "ready", name
        assert comp["ports"], name


def test_detailed_health_lists_every_component_as_ready(api: httpx.Client, stack: StackHandle) -> None:
    resp = api.get("/api/health", params={"detail": "true"})
    assert resp.status_code == 200, resp.text
    components = resp.json()["components"]
    for name in stack.info["components"]:
        if name in ("traefik", "mailcatcher"):  # the edge itself, and a local-only SMTP sink
            continue
        assert name in components, f"{name} missing from the detailed health"
        assert components[name]["ready"] is True, (name, components[name])


def test_killed_service_gives_503_then_recovers(api: httpx.Client, stack: StackHandle) -> None:
    """A killed pipelines process: its routes answer 503 JSON (never hang), the launcher restarts
    it, and the routes work again."""
    assert "pipelines" in stack.info["components"]
    old = stack.kill_component("pipelines")
    saw_503 = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not saw_503:
        resp = api.get("/api/catalog", timeout=5)
        if resp.status_code == 503:
            saw_503 = True
            assert resp.json() == {"detail": "Service unavailable: pipelines"}
            assert resp.headers.get("retry-after")
    assert saw_503, "the gateway never reported pipelines as unavailable"
    stack.wait_component_ready("pipelines", not_pid=old, timeout=60)
    resp = api.get("/api/catalog")
    assert resp.status_code != 503, resp.text
    assert "restarting pipelines" in stack.log_tail(2000)
