"""interloper-stack up end to end, with tiny fake service processes (the real ones are tested in
tests-e2e): ports, environment, READY line, stack.json, restarts, shutdown, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from icp_stack.launcher import COMPONENTS, SERVICES
from icp_stack.ports import free_port
from icp_stack.pytest_plugin import (
    StackHandle,
    infra_tmp_dir,
    remove_infra_tmp_dir,
    start_stack,
    stop_stack_process,
)

FAKE = Path(__file__).with_name("fake_service.py")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_dead(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("fakebin")
    for command in {s.command[0] for s in SERVICES}:
        script = bin_dir / command
        script.write_text(f'#!/bin/sh\nFAKE_NAME={command} exec "{sys.executable}" "{FAKE}" "$@"\n')
        script.chmod(0o755)
    return bin_dir


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERLOPER_", "FAKE_"))}
    env.update(extra)
    return env


def _start(tmp: Path, fake_bin: Path, *args: str, log: str = "stack.log", **env: str) -> StackHandle:
    return start_stack(
        tmp / "data",
        free_port(),
        tmp / log,
        ["--bin-dir", str(fake_bin), *args],
        timeout=60,
        env=_env(**env),
    )


@pytest.fixture(scope="module")
def fake_stack(tmp_path_factory: pytest.TempPathFactory, fake_bin: Path) -> Iterator[StackHandle]:
    tmp = infra_tmp_dir(tmp_path_factory, "fakestack")
    handle = _start(
        tmp, fake_bin, INTERLOPER_CUSTOM_SETTING="kept", PYTHONPATH="/opt/catalogs", INTERLOPER_AUTH_DEV_LOGIN="false"
    )
    yield handle
    if handle.process.poll() is None:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(tmp)


def _child_env(stack: StackHandle, name: str) -> dict[str, str]:
    url = stack.info["components"][name]["http_url"]
    env: dict[str, str] = httpx.get(f"{url}/env").json()["env"]
    return env


def test_ready_line_and_stack_json(fake_stack: StackHandle) -> None:
    info = fake_stack.info
    assert fake_stack.base_url == info["public_url"] == f"http://127.0.0.1:{info['http_port']}"
    assert list(info["components"]) == list(COMPONENTS)
    for name, comp in info["components"].items():
        assert comp["name"] == name
        assert comp["state"] == "ready"
        assert _alive(comp["pid"])
        assert comp["ports"]
    assert info["components"]["identity"]["grpc_target"].startswith("127.0.0.1:")
    assert info["components"]["pipelines"]["grpc_target"].startswith("127.0.0.1:")
    assert info["components"]["nats"]["url"].startswith("nats://127.0.0.1:")
    assert info["components"]["postgres"]["port"] > 0
    ports = [p for comp in info["components"].values() for p in comp["ports"].values()]
    assert len(ports) == len(set(ports)), "every listening port is distinct"


def test_api_health_through_traefik(fake_stack: StackHandle) -> None:
    resp = httpx.get(f"{fake_stack.base_url}/api/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"]


def test_service_environment(fake_stack: StackHandle) -> None:
    comps = fake_stack.info["components"]
    env = _child_env(fake_stack, "identity")
    assert env["INTERLOPER_HTTP_HOST"] == "127.0.0.1"
    assert env["INTERLOPER_HTTP_PORT"] == str(comps["identity"]["ports"]["http"])
    assert env["INTERLOPER_GRPC_PORT"] == str(comps["identity"]["ports"]["grpc"])
    assert env["INTERLOPER_POSTGRES_HOST"] == "127.0.0.1"
    assert env["INTERLOPER_POSTGRES_PORT"] == str(comps["postgres"]["port"])
    pg_passwords = json.loads((fake_stack.data_dir / "postgres-passwords.json").read_text())
    assert env["INTERLOPER_POSTGRES_USER"] == "interloper_identity"  # its own role, not the superuser
    assert env["INTERLOPER_POSTGRES_PASSWORD"] == pg_passwords["interloper_identity"]
    nats_passwords = json.loads((fake_stack.data_dir / "nats-users.json").read_text())
    assert env["INTERLOPER_NATS_USER"] == "identity"
    assert env["INTERLOPER_NATS_PASSWORD"] == nats_passwords["identity"]
    assert env["INTERLOPER_NATS_URL"] == comps["nats"]["url"]
    assert env["INTERLOPER_DATA_DIR"] == str(fake_stack.data_dir)
    assert env["INTERLOPER_PUBLIC_URL"] == fake_stack.base_url
    assert env["INTERLOPER_AUTH_COOKIE_SECURE"] == "false"
    assert env["INTERLOPER_AUTH_DEV_LOGIN"] == "false"  # the user's value wins
    assert env["INTERLOPER_CUSTOM_SETTING"] == "kept"
    assert env["PYTHONPATH"] == "/opt/catalogs"
    secret = (fake_stack.data_dir / "internal-secret").read_text().strip()
    assert len(secret) >= 32 and env["INTERLOPER_INTERNAL_SECRET"] == secret
    # The address book, for every process.
    for service in SERVICES:
        assert env[service.url_env] == comps[service.name]["http_url"]
        if service.grpc_env:
            assert env[service.grpc_env] == comps[service.name]["grpc_target"]
    notifications = _child_env(fake_stack, "notifications")
    assert notifications["INTERLOPER_SMTP_HOST"] == "127.0.0.1"
    assert notifications["INTERLOPER_SMTP_PORT"] == str(comps["mailcatcher"]["ports"]["smtp"])
    assert notifications["INTERLOPER_SMTP_SECURITY"] == "none"
    assert comps["mailcatcher"]["mail_dir"] == str(fake_stack.data_dir / "mail")
    worker = _child_env(fake_stack, "pipelines-worker")
    assert worker["INTERLOPER_HTTP_PORT"] == str(comps["pipelines-worker"]["ports"]["http"])
    assert "INTERLOPER_GRPC_PORT" not in worker
    assert worker["INTERLOPER_IDENTITY_GRPC_TARGET"] == comps["identity"]["grpc_target"]
    assert httpx.get(f"{comps['pipelines-worker']['http_url']}/env").json()["argv"][1:] == ["worker"]


def test_killed_service_is_restarted(fake_stack: StackHandle) -> None:
    old = fake_stack.kill_component("pipelines")
    comp = fake_stack.wait_component_ready("pipelines", not_pid=old, timeout=30)
    assert comp["pid"] != old and comp["restarts"] >= 1
    assert httpx.get(f"{comp['http_url']}/readyz").status_code == 200
    assert "restarting pipelines (exit code -9 (SIGKILL))" in fake_stack.log_tail(400)


def test_killed_infrastructure_is_restarted(fake_stack: StackHandle) -> None:
    old = fake_stack.kill_component("nats")
    comp = fake_stack.wait_component_ready("nats", not_pid=old, timeout=30)
    assert comp["pid"] != old
    old_pg = fake_stack.kill_component("postgres")
    comp = fake_stack.wait_component_ready("postgres", not_pid=old_pg, timeout=60)
    assert comp["pid"] != old_pg


def test_sigterm_stops_everything_within_10_s(fake_stack: StackHandle) -> None:
    pids = [c["pid"] for c in fake_stack.reload_info()["components"].values()]
    t0 = time.monotonic()
    assert stop_stack_process(fake_stack.process, timeout=12) == 0
    assert time.monotonic() - t0 < 10
    assert _wait_dead(pids, 1) == []
    assert not (fake_stack.data_dir / "stack.json").exists()
    assert "stack stopped" in fake_stack.log_tail(5)


def test_warm_restart_keeps_data_and_secret(infra_tmp_path: Path, fake_bin: Path) -> None:
    without = ("--without", "agent,pipelines-worker,pipelines-scheduler")
    first = _start(infra_tmp_path, fake_bin, *without, log="first.log")
    secret = (first.data_dir / "internal-secret").read_text()
    assert "initialising a new PostgreSQL cluster" in first.log_tail(1000)
    stop_stack_process(first.process)
    t0 = time.monotonic()
    second = _start(infra_tmp_path, fake_bin, *without, log="second.log")
    try:
        assert time.monotonic() - t0 < 20
        assert (second.data_dir / "internal-secret").read_text() == secret
        assert "initialising a new PostgreSQL cluster" not in second.log_tail(1000)
    finally:
        stop_stack_process(second.process)
    third = _start(infra_tmp_path, fake_bin, "--fresh", *without, log="third.log")
    try:
        assert (third.data_dir / "internal-secret").read_text() != secret
        assert "initialising a new PostgreSQL cluster" in third.log_tail(1000)
    finally:
        stop_stack_process(third.process)


def test_without_leaves_components_and_their_addresses_out(infra_tmp_path: Path, fake_bin: Path) -> None:
    stack = _start(infra_tmp_path, fake_bin, "--without", "pipelines-worker,pipelines-scheduler", "--without", "agent")
    try:
        comps = stack.info["components"]
        assert set(comps) == set(COMPONENTS) - {"pipelines-worker", "pipelines-scheduler", "agent"}
        env = _child_env(stack, "gateway")
        assert "INTERLOPER_AGENT_URL" not in env and "INTERLOPER_WORKER_URL" not in env
        assert env["INTERLOPER_PIPELINES_URL"] == comps["pipelines"]["http_url"]
    finally:
        stop_stack_process(stack.process)


def test_launcher_sigkill_leaves_nothing_behind(infra_tmp_path: Path, fake_bin: Path) -> None:
    stack = _start(infra_tmp_path, fake_bin, "--without", "agent,notifications")
    assert "mailcatcher" not in stack.info["components"]  # no notifications, no mail catcher
    pids = [c["pid"] for c in stack.info["components"].values()]
    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait()
    assert _wait_dead(pids, 10) == []


def test_a_service_failing_at_startup_is_reported(infra_tmp_path: Path, fake_bin: Path) -> None:
    with pytest.raises(RuntimeError) as err:
        _start(infra_tmp_path, fake_bin, FAKE_EXIT_CODE="3", FAKE_FAIL_ONLY="interloper-agent")
    message = str(err.value)
    assert "exited with code 1 before READY" in message
    assert "agent: exited while starting (exit code 3)" in message
    assert "failing on purpose" in message
    assert not (infra_tmp_path / "data" / "stack.json").exists()


def test_missing_service_commands_are_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "icp_stack",
            "up",
            "--data-dir",
            str(tmp_path / "d"),
            "--http-port",
            str(free_port()),
            "--bin-dir",
            str(empty),
            "--without",
            "agent",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "identity: " in result.stderr and "interloper-identity serve" in result.stderr
    assert "agent:" not in result.stderr
    assert "--without" in result.stderr


def test_busy_http_port_is_a_clear_error(tmp_path: Path, fake_bin: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "icp_stack",
                "up",
                "--data-dir",
                str(tmp_path / "d"),
                "--http-port",
                str(port),
                "--bin-dir",
                str(fake_bin),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
    assert result.returncode == 2
    assert f"port {port} (http) is already in use" in result.stderr


def test_second_launcher_on_the_same_data_dir_is_refused(fake_bin: Path, infra_tmp_path: Path) -> None:
    stack = _start(infra_tmp_path, fake_bin, "--without", "agent,notifications,pipelines-worker,pipelines-scheduler")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "icp_stack",
                "up",
                "--data-dir",
                str(stack.data_dir),
                "--http-port",
                str(free_port()),
                "--bin-dir",
                str(fake_bin),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert result.returncode == 2
        assert "another interloper-stack" in result.stderr
        assert json.loads((stack.data_dir / "stack.json").read_text())["ready"] is True
    finally:
        stop_stack_process(stack.process)
