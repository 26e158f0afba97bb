"""A newcomer's first hour (issue 23), through Traefik: collection paths answer without the
trailing slash as with it (no redirect), the aggregated OpenAPI document lists every public
route of every service, and an assistant without a model says so in the chat stream."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from icp_stack.ports import free_port
from icp_stack.pytest_plugin import StackHandle

# Every app whose routes the gateway serves publicly: the gateway's own and each service's.
APPS = ("icp_gateway", "icp_identity", "icp_pipelines", "icp_agent", "icp_notifications")


def signed_in(client: httpx.Client, org: str = "Newcomer org") -> dict[str, Any]:
    r = client.get("/api/auth/dev-login", params={"email": f"newcomer-{uuid.uuid4().hex[:8]}@e2e.example"})
    assert r.status_code == 302, r.text
    r = client.post("/api/organisations", json={"name": org})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


COLLECTIONS = (
    "/api/organisations",
    "/api/resources",
    "/api/sources",
    "/api/destinations",
    "/api/assets",
    "/api/jobs",
    "/api/runs",
    "/api/backfills",
    "/api/catalog",
    "/api/agent/sessions",
)


def test_collection_paths_answer_without_the_trailing_slash(api: httpx.Client) -> None:
    signed_in(api)
    # writes without the slash (as the web UI sends them) and with it
    asset = api.post("/api/assets", json={"key": "demo_ping"})
    assert asset.status_code == 201, asset.text
    for path in ("/api/jobs", "/api/jobs/"):
        r = api.post(path, json={"name": f"job via {path}", "cron": "0 3 * * *", "asset_ids": [asset.json()["id"]]})
        assert r.status_code == 200, (path, r.status_code, r.text)
    for path in COLLECTIONS:
        bare, slashed = api.get(path), api.get(path + "/")
        assert bare.status_code == slashed.status_code == 200, (path, bare.status_code, slashed.status_code)
        assert bare.headers["content-type"].startswith("application/json"), path
        assert bare.json() == slashed.json(), path
    jobs = api.get("/api/jobs").json()
    assert sorted(j["name"] for j in jobs) == ["job via /api/jobs", "job via /api/jobs/"]
    assert api.get("/api/runs?status=queued").status_code == 200
    r = api.post("/api/organisations/", json={"name": "Second org"})
    assert r.status_code == 201, r.text
    assert sorted(o["name"] for o in api.get("/api/organisations").json()) == ["Newcomer org", "Second org"]


def public_routes() -> set[tuple[str, str]]:
    """(path, method) of every route each app declares for its OpenAPI document under /api."""
    os.environ.setdefault("INTERLOPER_INTERNAL_SECRET", "openapi-completeness")
    found: set[tuple[str, str]] = set()
    for package in APPS:
        settings = importlib.import_module(f"{package}.settings").Settings()
        app = importlib.import_module(f"{package}.app").create_app(settings)
        app = getattr(app, "own", app)  # the gateway wraps its own FastAPI app
        for route in iter_route_contexts(app.routes):
            if isinstance(route.original_route, APIRoute) and route.include_in_schema and route.path.startswith("/api"):
                found |= {(route.path, method.lower()) for method in route.methods or ()}
    return found


def test_aggregated_openapi_lists_every_public_route(api: httpx.Client) -> None:
    r = api.get("/api/openapi.json")
    assert r.status_code == 200
    listed = {(path, method) for path, item in r.json()["paths"].items() for method in item}
    expected = public_routes()
    assert {path for path, _ in expected if path.startswith("/api/agent/")}, "no agent route found in the apps"
    assert sorted(expected - listed) == []


# ------------------------------------------------------------------------- no model configured


@pytest.fixture
def newcomer(stack_without_model: StackHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack_without_model.base_url, timeout=30.0, follow_redirects=False) as client:
        signed_in(client)
        yield client


def frames(body: str) -> list[tuple[str | None, Any]]:
    out = []
    for block in body.split("\n\n"):
        event, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        if data is not None:
            out.append((event, data))
    return out


def test_without_a_model_the_chat_answers_in_its_stream(newcomer: httpx.Client) -> None:
    session = newcomer.post("/api/agent/sessions").json()
    r = newcomer.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "hello"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    (reply_event, reply), (error_event, error) = frames(r.text)
    assert reply_event is None and reply["author"] != "user"
    text = "".join(part["text"] for part in reply["content"]["parts"])
    assert "no model configured" in text and "GOOGLE_API_KEY" in text and "README" in text
    assert (error_event, error) == ("error", {"detail": "Assistant model not configured"})

    # a client that wants JSON gets the plain status
    r = newcomer.post(
        f"/api/agent/sessions/{session['id']}/chat", json={"message": "hello"}, headers={"Accept": "application/json"}
    )
    assert (r.status_code, r.json()) == (503, {"detail": "Assistant model not configured"})

    # another try from the web UI (new chat, then a message) does not add another empty chat
    again = newcomer.post("/api/agent/sessions").json()
    assert [s["id"] for s in newcomer.get("/api/agent/sessions").json()] == [again["id"]]


def test_the_start_up_table_says_the_assistant_is_disabled(stack_without_model: StackHandle) -> None:
    log = stack_without_model.log_path.read_text(encoding="utf-8")
    [line] = [line for line in log.splitlines() if line.startswith("assistant ")]
    assert "disabled (no model" in line and "GOOGLE_API_KEY" in line


# ------------------------------------------------------------------------------ bad settings

BIN = Path(sys.executable).parent
SERVICE_COMMANDS = ("interloper-identity", "interloper-pipelines", "interloper-notifications", "interloper-agent")


def run_command(argv: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**clean, **env})


def test_a_bad_service_setting_is_one_line_naming_the_variable() -> None:
    result = run_command([str(BIN / "interloper-identity"), "serve"], INTERLOPER_AUTH_SESSION_EXPIRY_DAYS="abc")
    assert result.returncode == 78
    [line] = result.stderr.splitlines()
    assert line.startswith("interloper-identity: configuration error: INTERLOPER_AUTH_SESSION_EXPIRY_DAYS='abc':")
    assert "integer" in line


@pytest.mark.parametrize("command", [*SERVICE_COMMANDS, "interloper-gateway"])
def test_every_service_names_a_bad_variable(command: str) -> None:
    result = run_command([str(BIN / command), "serve"], INTERLOPER_POSTGRES_PORT="five")
    assert result.returncode == 78, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"{command}: configuration error: ") for line in lines), lines
    assert any("INTERLOPER_POSTGRES_PORT='five'" in line for line in lines), lines


def test_the_stack_stops_on_a_bad_service_setting(tmp_path: Path) -> None:
    """The service prints its line, the launcher names the configuration error once and exits."""
    result = run_command(
        [
            str(BIN / "interloper-stack"),
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(free_port()),
            "--no-color",
            "--without",
            "pipelines,pipelines-worker,pipelines-scheduler,notifications,agent,gateway,traefik",
        ],
        timeout=120,
        INTERLOPER_AUTH_SESSION_EXPIRY_DAYS="abc",
    )
    assert result.returncode == 1
    assert result.stdout == ""  # never READY
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "identity: exited while starting (exit code 78: configuration error)" in errors[0]
    assert "INTERLOPER_AUTH_SESSION_EXPIRY_DAYS='abc'" in result.stderr
