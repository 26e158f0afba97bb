"""Variables the stack sets per process are never silently ignored in the launcher's environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from icp_stack.environment import check_environment


def run_up(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    return subprocess.run(
        [sys.executable, "-m", "icp_stack", "up", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_check_environment() -> None:
    assert check_environment({}) == ([], [])
    errors, notes = check_environment({"INTERLOPER_HTTP_PORT": "abc"})
    assert len(errors) == 1 and "INTERLOPER_HTTP_PORT='abc'" in errors[0] and "HTTP_PORT=" in errors[0]
    errors, notes = check_environment({"INTERLOPER_GRPC_PORT": "9101"})
    assert errors == [] and "INTERLOPER_GRPC_PORT=9101 is not used" in notes[0]


def test_stack_refuses_a_bad_http_port_variable(tmp_path: Path) -> None:
    result = run_up(tmp_path, "--http-port", "0", INTERLOPER_HTTP_PORT="abc")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("interloper-stack: error: INTERLOPER_HTTP_PORT='abc': not a port number")
    assert not (tmp_path / "d").exists()  # nothing was started


def test_busy_http_port_names_the_way_to_another_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_up(tmp_path, "--http-port", str(port))
    assert result.returncode == 2
    assert f"port {port} (http) is already in use" in result.stderr and "HTTP_PORT=" in result.stderr
