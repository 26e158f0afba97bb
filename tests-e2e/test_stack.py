"""The stack as a whole, through Traefik: health, what runs where, and recovery of a killed
service."""

from __future__ import annotations

import json
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


def test_detailed_health_lists_every_component_as_ready(stack: StackHandle) -> None:
    # On the gateway's own port: through Traefik the detail is not served (test_edge.py).
    gateway = stack.component("gateway")["http_url"]
    resp = httpx.get(f"{gateway}/api/health", params={"detail": "true"}, timeout=30)
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


def test_console_outside_a_terminal_stays_json_without_colour_codes(api: httpx.Client, stack: StackHandle) -> None:
    """The session's stack writes its console to a file: every process's JSON lines as they are
    (start-up lines included), with no terminal colour codes. (Per-request access lines are off by
    default, INTERLOPER_ACCESS_LOG; test_stack_demo.py turns them on and reads them.)"""
    assert api.get("/favicon.ico").status_code == 200
    log = stack.log_path.read_text(errors="replace")  # the whole console since start-up
    prefixed = [line.split(" | ", 1) for line in log.splitlines() if " | " in line]
    gateway = [text for name, text in prefixed if name.strip() == "gateway"]
    entries = [json.loads(line) for line in gateway]  # every gateway line is a JSON object
    assert entries and all(e["service"] == "interloper-gateway" for e in entries)
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # start-up lines too, as they are
    assert "color_message" not in log and "\\u001b" not in log and "\x1b" not in log
