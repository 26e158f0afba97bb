"""`docker compose up`, as local processes: every service of ours starts with its command (the
image's entrypoint + the compose command) and its environment as compose builds it (the image's
ENV, .env.example as .env, then `environment:`), from the repository's virtual environment (that
each image's own environment holds what its command imports is test_images' job), in the order
`depends_on` imposes (a one-shot must exit 0, a service must be healthy, before what depends on
it starts). The one-shot migrations run in this process (the same command line and
environment, for real against the test server: four more Python processes would double this
test's time). Only the network is mapped onto this machine: `postgres` and `nats` are the test
servers, ports are free ports, and each image gets a database of its own (nothing collides with
the other tests on the same server). NATS is compose's own `nats` command instead (deploy/nats/auth.conf
and the passwords of .env.example), so each service must log in as the NATS user compose gives
it. Every service must then pass its image's HEALTHCHECK (/readyz: its migrated database and
NATS) and answer /healthz; the mail catcher must greet."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploylib import (
    DOCKER_DIR,
    ROOT,
    compose_image,
    compose_service_env,
    env_example,
    env_instructions,
    exec_form,
    load_compose,
    parse_dockerfile,
    run_command,
)

from icp_stack.infra.nats import nats_server_binary
from icp_stack.infra.process import http_ok
from icp_stack.ports import free_port

TIMEOUT = 240.0


def _http_ok(env: dict[str, str], path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{env['INTERLOPER_HTTP_PORT']}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _healthcheck(env: dict[str, str], path: str) -> bool:
    """The image's HEALTHCHECK command."""
    proc = subprocess.run(
        [sys.executable, str(DOCKER_DIR / "healthcheck.py"), path], env=env, capture_output=True, timeout=30
    )
    return proc.returncode == 0


def _edge_fallback_answers(port: int) -> bool:
    """The edge's JSON 503 (what Traefik fails over to while no gateway is healthy)."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/", timeout=2)
    except urllib.error.HTTPError as exc:
        return (
            exc.code == 503 and exc.headers["Content-Type"] == "application/json" and bool(exc.headers["Retry-After"])
        )
    except OSError:
        return False
    return False


def _smtp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as conn:
            return conn.recv(3) == b"220"
    except OSError:
        return False


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    depends_on: dict[str, str]
    oneshot: bool
    smtp_port: int | None = None
    fallback_port: int | None = None  # the edge fallback: no /readyz, a JSON 503 to everything
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    done: bool = False
    events: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log else ""


INFRA = {"postgres", "nats"}  # the test servers stand in for them


@pytest.fixture
def compose_nats(tmp_path: Path) -> Iterator[str]:
    """Compose's `nats` service as a process: its command, its environment (the users'
    passwords) and its mounted files; only the ports and the store are mapped onto this machine.
    Yields the client URL (no credentials: each service brings its own)."""
    spec = load_compose()["services"]["nats"]
    mounts = {}
    for volume in spec["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = str(ROOT / source) if source.startswith(".") else str(tmp_path / "nats-data")
    port, monitor = free_port(), free_port()
    argv = [mounts.get(arg, arg) for arg in spec["command"]]
    argv[0] = str(nats_server_binary())
    argv[argv.index("--http_port") + 1] = str(monitor)
    argv += ["--addr", "127.0.0.1", "--port", str(port)]
    env = {"PATH": os.environ["PATH"], **compose_service_env(spec, env_example())}
    log = tmp_path / "nats.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"):
            assert proc.poll() is None and time.monotonic() < deadline, f"nats: {log.read_text(errors='replace')}"
            time.sleep(0.2)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_compose_up_as_processes(postgres_server: Any, compose_nats: str, tmp_path: Path) -> None:
    compose = load_compose()
    suffix = uuid.uuid4().hex[:8]
    venv_bin = Path(sys.executable).parent
    services: dict[str, Service] = {}
    for name, spec in compose["services"].items():
        if spec.get("profiles"):  # opt-in extras (e.g. `--profile metrics`), not part of `up`
            continue
        image = compose_image(spec)
        if image is None:
            assert name in INFRA or name == "traefik", f"unexpected third-party service {name}"
            continue
        runtime = parse_dockerfile(image.dockerfile).final
        env = {**env_instructions(runtime), **compose_service_env(spec, env_example())}
        for key, compose_value in (
            ("INTERLOPER_POSTGRES_HOST", "postgres"),
            ("INTERLOPER_NATS_URL", "nats://nats:4222"),
        ):
            assert env.get(key, compose_value) == compose_value, f"{name}: {key}={env[key]}"
        env.update(postgres_server.env())
        env["INTERLOPER_NATS_URL"] = compose_nats
        env["INTERLOPER_POSTGRES_DATABASE"] = f"deploy_{image.name.replace('-', '_')}_{suffix}"
        env["INTERLOPER_HTTP_PORT"] = str(free_port())
        if "INTERLOPER_GRPC_PORT" in env:
            env["INTERLOPER_GRPC_PORT"] = str(free_port())
        env["INTERLOPER_DATA_DIR"] = str(tmp_path / name)
        env["PATH"] = f"{venv_bin}{os.pathsep}{os.environ['PATH']}"
        env["HOME"] = str(tmp_path)
        # The image compiled its bytecode at build time; here the shared venv's caches serve.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        command = list(spec.get("command") or exec_form(runtime.all("CMD")[-1].value))
        smtp_port = None
        if command[0] == "mailcatcher":
            smtp_port = free_port()
            command[command.index("--port") + 1] = str(smtp_port)
            command[command.index("--dir") + 1] = str(tmp_path / "mail")
        fallback_port = None
        if "icp_common.edge_fallback" in spec.get("entrypoint", []):
            fallback_port = free_port()
            command[command.index("--port") + 1] = str(fallback_port)
        entrypoint = spec.get("entrypoint") or exec_form(runtime.all("ENTRYPOINT")[-1].value)
        depends = {dep: cond["condition"] for dep, cond in (spec.get("depends_on") or {}).items()}
        services[name] = Service(
            name,
            [str(venv_bin / entrypoint[0]), *entrypoint[1:], *command],
            env,
            {d: c for d, c in depends.items() if d not in INFRA},
            oneshot=spec.get("restart") == "no",
            smtp_port=smtp_port,
            fallback_port=fallback_port,
        )
    assert {
        "gateway",
        "identity",
        "pipelines",
        "pipelines-scheduler",
        "pipelines-worker",
        "notifications",
        "agent",
        "edge-fallback",
    } <= set(services)
    assert {s.name for s in services.values() if s.oneshot} == {
        "identity-migrate",
        "pipelines-migrate",
        "notifications-migrate",
        "agent-migrate",
    }

    def satisfied(service: Service) -> bool:
        for dep, condition in service.depends_on.items():
            other = services[dep]
            if condition == "service_started" and other.proc is None:
                return False
            if condition in ("service_healthy", "service_completed_successfully") and not other.done:
                return False
        return True

    deadline = time.monotonic() + TIMEOUT
    try:
        while not all(s.done for s in services.values()):
            assert time.monotonic() < deadline, "not done in time: " + "; ".join(
                f"{s.name} ({'started' if s.proc else 'waiting for ' + ', '.join(s.depends_on)}):\n{s.output()}"
                for s in services.values()
                if not s.done
            )
            for service in services.values():
                if service.oneshot and not service.done:
                    if satisfied(service):
                        script = Path(service.argv[0]).name
                        inv = run_command(script, service.argv[1:], service.env, stub=False)
                        assert inv.exit_code in (None, 0), f"{service.name} failed"
                        service.done = True
                    continue
                if service.proc is None:
                    if satisfied(service):
                        service.log = tmp_path / f"{service.name}.log"
                        with service.log.open("wb") as out:
                            service.proc = subprocess.Popen(
                                service.argv, env=service.env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
                            )
                    continue
                if service.done:
                    continue
                code = service.proc.poll()
                assert code is None, f"{service.name} exited {code}:\n{service.output()}"
                if service.smtp_port is not None:
                    service.done = _smtp_ready(service.smtp_port)
                elif service.fallback_port is not None:
                    service.done = _edge_fallback_answers(service.fallback_port)
                else:
                    service.done = _http_ok(service.env, "/readyz")
            time.sleep(0.2)
        for service in services.values():
            if not service.oneshot and service.smtp_port is None and service.fallback_port is None:
                assert _healthcheck(service.env, "/readyz"), f"{service.name}: the image's HEALTHCHECK failed"
                assert _http_ok(service.env, "/healthz"), f"{service.name}: /healthz"
    finally:
        running = [s.proc for s in services.values() if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
