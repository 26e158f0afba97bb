"""`interloper-stack up --log-format text --demo` as a newcomer runs it (`make demo` on a terminal):
a console of short text lines without routine access lines, a startup summary that says where
things are, and a demo organisation whose pipeline has run once; a restart adds nothing.

This module runs its own stacks (one data dir, started twice), not the session's `stack`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from icp_stack.ports import free_port
from icp_stack.pytest_plugin import (
    StackHandle,
    infra_tmp_dir,
    remove_infra_tmp_dir,
    start_stack,
    stop_stack_process,
)

ARGS = ["--log-format", "text", "--demo"]
DEMO_EMAIL = "demo@example.com"
FINISHED = ("success", "failed", "canceled")


def _env() -> dict[str, str]:
    # The launcher's own defaults (demo catalog, dev login), whatever other modules set for theirs;
    # the full access log (off by default: only 5xx and slow requests) as an operator turns it on.
    env = {k: v for k, v in os.environ.items() if k not in ("INTERLOPER_CATALOG", "INTERLOPER_AUTH_DEV_LOGIN")}
    return {**env, "INTERLOPER_ACCESS_LOG": "true"}


@pytest.fixture(scope="module")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = infra_tmp_dir(tmp_path_factory, "demo")
    yield base
    remove_infra_tmp_dir(base)


@pytest.fixture(scope="module")
def demo_stack(demo_base: Path) -> Iterator[StackHandle]:
    handle = start_stack(demo_base / "data", free_port(), demo_base / "first.log", ARGS, timeout=240, env=_env())
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)


def _console(handle: StackHandle) -> list[str]:
    return handle.log_path.read_text(encoding="utf-8").splitlines()


def _wait_for_line(handle: StackHandle, needle: str, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = _console(handle)
        if any(needle in line for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never appeared on the console:\n" + "\n".join(lines[-40:]))
        time.sleep(0.2)


@contextmanager
def _demo_client(base_url: str) -> Iterator[httpx.Client]:
    """The demo user, signed in as a person would (dev login), in the demo organisation."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        _sign_in(client)
        yield client


def _sign_in(client: httpx.Client) -> None:
    r = client.get("/api/auth/dev-login", params={"email": DEMO_EMAIL})
    assert r.status_code == 302, r.text
    organisations = [o for o in client.get("/api/organisations").json() if o["name"] == "Demo organisation"]
    assert len(organisations) == 1, organisations
    assert client.get("/api/auth/me").json()["last_organisation_id"] == organisations[0]["id"]
    r = client.post("/api/auth/switch-org", json={"organisation_id": organisations[0]["id"]})
    assert r.status_code == 200, r.text


def _inventory(client: httpx.Client) -> dict[str, Any]:
    jobs = client.get("/api/jobs/").json()
    return {
        "organisations": sorted(o["name"] for o in client.get("/api/organisations").json()),
        "resources": sorted((r["key"], r["name"]) for r in client.get("/api/resources/").json()),
        "destinations": sorted((d["key"], d["name"]) for d in client.get("/api/destinations/").json()),
        "sources": sorted((s["key"], s["name"]) for s in client.get("/api/sources/").json()),
        "jobs": sorted((j["name"], j["enabled"], j["cron"]) for j in jobs),
        "runs": sorted(r["id"] for j in jobs for r in client.get("/api/runs/", params={"job_id": j["id"]}).json()),
    }


def test_text_console_has_no_json_and_no_routine_access_lines(demo_stack: StackHandle) -> None:
    base = demo_stack.base_url
    for path in ("/", "/favicon.ico", "/api/health", "/api/health", "/invite/demo-secret-token"):
        assert httpx.get(base + path).status_code == 200, path
    # A failing request is shown; it comes after the ones above, so once it is there, they would be.
    assert httpx.get(base + "/api/jobs/").status_code == 401
    lines = _wait_for_line(demo_stack, "GET /api/jobs/ -> 401")

    data = demo_stack.data_dir
    for label in ("web UI", "sign in (local)", "mail folder", "demo output", "logs", "demo sign-in", "demo files"):
        assert any(line.startswith(f"{label} ") for line in lines), f"no {label!r} line in the summary"
    summary = {line.split("  ", 1)[0].strip(): line.split("  ", 1)[1].strip() for line in lines if "  " in line}
    assert summary["web UI"] == base
    assert summary["mail folder"].startswith(str(data / "mail"))
    assert summary["demo sign-in"] == f"{base}/api/auth/dev-login?email=demo%40example.com&redirect=/"

    logged = [line for line in lines if line[:2].isdigit()]  # "12:03:04 <component> <LEVEL> ..."
    assert logged and all(line[8:9] == " " and line[2] == ":" for line in logged)
    assert not [line for line in lines if " {" in line[:40] or line.startswith("{")], "JSON on the text console"
    assert not [line for line in lines if "\x1b" in line]
    for request in ("GET / ->", "GET /favicon.ico ->", "GET /api/health ->"):
        assert not [line for line in lines if request in line], request
    assert not [line for line in lines if "Waiting for application startup" in line or "[INF]" in line]

    # Nothing is lost: the files keep every line, as JSON.
    gateway_log = (data / "logs" / "gateway.log").read_text(encoding="utf-8")
    assert '"msg": "GET /favicon.ico -> 200' in gateway_log
    assert '"msg": "GET /api/health -> 200' in gateway_log
    assert '"msg": "GET /invite/<redacted> -> 200' in gateway_log and "demo-secret-token" not in gateway_log
    assert "color_message" not in gateway_log and "\\u001b" not in gateway_log


def test_demo_organisation_has_a_pipeline_whose_first_run_succeeds(demo_stack: StackHandle) -> None:
    with _demo_client(demo_stack.base_url) as client:
        inventory = _inventory(client)
        assert inventory["organisations"] == ["Demo organisation"]
        assert inventory["resources"] == [("demo_config", "Demo config")]
        assert inventory["destinations"] == [("demo_csv_destination", "Demo CSV")]
        assert inventory["sources"] == [("demo_live", "Demo Live"), ("demo_source", "Demo Source")]
        assert inventory["jobs"] == [("Demo pipeline", False, "0 6 * * *")]
        assert len(inventory["runs"]) == 1
        run_id = inventory["runs"][0]

        deadline = time.monotonic() + 90
        while (run := client.get(f"/api/runs/{run_id}").json())["status"] not in FINISHED:
            assert time.monotonic() < deadline, f"the demo run did not finish: {run}"
            time.sleep(0.25)
        events = client.get(f"/api/runs/{run_id}/events").json()
        assert run["status"] == "success", events
        progress = [e["message"] for e in events if e["event_type"] == "log" and e["asset_key"] == "progress"]
        assert progress == [f"Progress: step {i}/5 done" for i in range(1, 6)]
        executions = {e["asset_key"]: e["status"] for e in client.get(f"/api/runs/{run_id}/asset-executions").json()}
        assert executions == dict.fromkeys(("events", "daily_summary", "users", "user_report", "progress"), "success")
        organisation_id = client.get("/api/auth/me").json()["organisation"]["id"]
    written = demo_stack.data_dir / "demo-output" / organisation_id
    assert sorted(p.parent.name for p in written.rglob("*.csv")) == sorted(
        ["progress", "users", "user_report", "date=" + run["partition_date"], "date=" + run["partition_date"]]
    )


def test_a_restart_with_demo_adds_nothing(demo_stack: StackHandle, demo_base: Path) -> None:
    with _demo_client(demo_stack.base_url) as client:
        before = _inventory(client)
    stop_stack_process(demo_stack.process)
    again = start_stack(demo_base / "data", free_port(), demo_base / "second.log", ARGS, timeout=240, env=_env())
    try:
        assert any("already set up, nothing added" in line for line in _console(again))
        with _demo_client(again.base_url) as client:
            assert _inventory(client) == before
    finally:
        stop_stack_process(again.process)
