"""``interloper-stack up --replicas``, with tiny fake service processes: every replica its own
process, ports and log; stack.json and the table list them; the gateway's replicas behind the edge
Traefik, a replicated service's behind the internal balancer (HTTP) and in a multi-address gRPC
target; a killed replica is restarted and the balancer keeps answering meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from icp_stack.infra.balancer import InternalBalancer
from icp_stack.infra.traefik import default_config_dir, render_gateway_servers
from icp_stack.launcher import SERVICES, StackError, StackOptions, build_plan, parse_replicas
from icp_stack.ports import free_port
from icp_stack.pytest_plugin import StackHandle, infra_tmp_dir, remove_infra_tmp_dir, start_stack, stop_stack_process

FAKE = Path(__file__).with_name("fake_service.py")
REPLICAS = "gateway=2,identity=2,pipelines=2,pipelines-worker=3,pipelines-scheduler=2,notifications=2,agent=2"


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("fakebin")
    for command in {s.command[0] for s in SERVICES}:
        script = bin_dir / command
        script.write_text(f'#!/bin/sh\nFAKE_NAME={command} exec "{sys.executable}" "{FAKE}" "$@"\n')
        script.chmod(0o755)
    return bin_dir


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("INTERLOPER_", "FAKE_"))}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory, fake_bin: Path) -> Iterator[StackHandle]:
    tmp = infra_tmp_dir(tmp_path_factory, "fakereplicas")
    handle = start_stack(
        tmp / "data",
        free_port(),
        tmp / "stack.log",
        ["--bin-dir", str(fake_bin), "--replicas", REPLICAS],
        timeout=90,
        env=_env(),
    )
    yield handle
    if handle.process.poll() is None:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(tmp)


def _pid_behind(url: str) -> int:
    response = httpx.get(f"{url}/env", timeout=10)
    assert response.status_code == 200, response.text
    pid: int = response.json()["pid"]
    return pid


def _env_of(stack: StackHandle, name: str) -> dict[str, str]:
    env: dict[str, str] = httpx.get(f"{stack.component(name)['http_url']}/env").json()["env"]
    return env


def test_parse_replicas() -> None:
    assert parse_replicas(["gateway=2,pipelines-worker=3", "", "agent=1"]) == {
        "gateway": 2,
        "pipelines-worker": 3,
        "agent": 1,
    }
    for bad in ("gateway", "postgres=2", "traefik=2", "gatway=2", "gateway=0", "gateway=x", "gateway=99"):
        with pytest.raises(StackError, match="replica"):
            parse_replicas([bad])


def test_edge_configuration_with_gateway_replicas() -> None:
    source = (default_config_dir() / "dynamic.yml").read_text(encoding="utf-8")
    rendered = yaml.safe_load(render_gateway_servers(source, ["http://127.0.0.1:1", "http://127.0.0.1:2"]))
    original = yaml.safe_load(source)
    servers = rendered["http"]["services"]["gateway-servers"]["loadBalancer"]
    assert servers["servers"] == [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2"}]
    assert servers["healthCheck"] == original["http"]["services"]["gateway-servers"]["loadBalancer"]["healthCheck"]
    # Retries (a GET/HEAD on Traefik's own 502 too) are the repository file's, unchanged.
    assert rendered["http"]["middlewares"] == original["http"]["middlewares"]
    assert rendered["http"]["routers"] == original["http"]["routers"]


def test_replicas_of_a_left_out_service_are_refused(tmp_path: Path, fake_bin: Path) -> None:
    options = StackOptions(data_dir=tmp_path, bin_dir=fake_bin, without=frozenset({"agent"}), replicas={"agent": 2})
    with pytest.raises(StackError, match="--replicas names agent, left out with --without"):
        build_plan(options)


@pytest.mark.parametrize("value", ["gateway=0", "postgres=2", "gateway"])
def test_bad_replicas_option_exits_2_before_anything_starts(tmp_path: Path, fake_bin: Path, value: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "icp_stack", "up", "--data-dir", str(tmp_path / "d")),
            *("--http-port", str(free_port()), "--bin-dir", str(fake_bin), "--replicas", value),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "interloper-stack: error: bad replica" in result.stderr and value in result.stderr
    assert not (tmp_path / "d" / "stack.json").exists()


def test_every_replica_is_a_supervised_process_with_its_own_ports(replicated: StackHandle) -> None:
    info = replicated.info
    assert info["replicas"]["pipelines-worker"] == ["pipelines-worker", "pipelines-worker-2", "pipelines-worker-3"]
    assert replicated.replicas("gateway") == ["gateway", "gateway-2"]
    names = [n for s in SERVICES for n in replicated.replicas(s.name)]
    assert len(names) == 15
    comps = info["components"]
    pids = {comps[n]["pid"] for n in names}
    assert len(pids) == len(names) and all(comps[n]["state"] == "ready" for n in names)
    ports = [p for n in names for p in comps[n]["ports"].values()]
    assert len(set(ports)) == len(ports)
    for service in SERVICES:
        for index, name in enumerate(replicated.replicas(service.name), start=1):
            assert comps[name]["component"] == service.name and comps[name]["replica"] == index
            env = _env_of(replicated, name)
            assert env["INTERLOPER_HTTP_PORT"] == str(comps[name]["ports"]["http"])
            if service.has_grpc:
                assert env["INTERLOPER_GRPC_PORT"] == str(comps[name]["ports"]["grpc"])
            assert Path(comps[name]["log"]).name == f"{name}.log" and Path(comps[name]["log"]).exists()
    table = replicated.log_tail(400)
    for name in names:
        assert any(line.split(" | ")[-1].startswith(f"{name} ") for line in table.splitlines()), name


def test_callers_get_every_replica(replicated: StackHandle) -> None:
    comps = replicated.info["components"]
    balancer = comps["traefik-internal"]
    env = _env_of(replicated, "gateway-2")
    for service in SERVICES:
        if service.name == "gateway":
            continue
        # HTTP: through the internal balancer, whose servers are the replicas.
        assert env[service.url_env] == balancer["urls"][service.name]
        assert balancer["servers"][service.name] == [comps[n]["http_url"] for n in replicated.replicas(service.name)]
        if service.grpc_env is not None:
            targets = ",".join(comps[n]["grpc_target"] for n in replicated.replicas(service.name))
            assert env[service.grpc_env] == f"ipv4:{targets}"


def test_http_is_spread_over_the_replicas(replicated: StackHandle) -> None:
    comps = replicated.info["components"]
    gateways = {comps[n]["pid"] for n in replicated.replicas("gateway")}
    assert {_pid_behind(replicated.base_url) for _ in range(8)} == gateways
    url = comps["traefik-internal"]["urls"]["pipelines"]
    assert {_pid_behind(url) for _ in range(8)} == {comps[n]["pid"] for n in replicated.replicas("pipelines")}


def test_a_killed_replica_leaves_the_rotation_and_comes_back(replicated: StackHandle) -> None:
    url = replicated.info["components"]["traefik-internal"]["urls"]["identity"]
    killed = replicated.kill_component("identity-2", signal.SIGKILL)
    # Every request answered while it is down (refused connections are retried on the other).
    survivors = {_pid_behind(url) for _ in range(20)}
    assert killed not in survivors
    back = replicated.wait_component_ready("identity-2", not_pid=killed)
    assert "restarting identity-2 (exit code -9 (SIGKILL))" in replicated.log_tail(400)
    deadline = 40
    seen: set[int] = set()
    for _ in range(deadline * 10):
        seen.add(_pid_behind(url))
        if back["pid"] in seen:
            break
    assert back["pid"] in seen


def test_sigterm_stops_every_replica(tmp_path_factory: pytest.TempPathFactory, fake_bin: Path) -> None:
    tmp = infra_tmp_dir(tmp_path_factory, "fakereplicas-stop")
    handle = start_stack(
        tmp / "data",
        free_port(),
        tmp / "stack.log",
        ["--bin-dir", str(fake_bin), "--replicas", "pipelines-worker=3", "--without", "agent,notifications"],
        timeout=90,
        env=_env(),
    )
    pids = [handle.component(n)["pid"] for n in handle.replicas("pipelines-worker")]
    assert len(set(pids)) == 3
    assert "traefik-internal" in handle.info["components"]
    assert stop_stack_process(handle.process) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    remove_infra_tmp_dir(tmp)


def test_internal_balancer_configuration(tmp_path: Path) -> None:
    balancer = InternalBalancer(
        tmp_path / "b", 1001, {"pipelines": (1002, ["http://127.0.0.1:1", "http://127.0.0.1:2"])}
    )
    balancer.prepare()
    static = yaml.safe_load(balancer.static_file.read_text())
    edge = yaml.safe_load((default_config_dir() / "traefik.yml").read_text())
    entry = static["entryPoints"]["pipelines"]
    assert entry["address"] == "127.0.0.1:1002"  # loopback only
    assert entry["http"] == edge["entryPoints"]["web"]["http"]  # what the edge lets through passes
    assert entry["forwardedHeaders"] == {"trustedIPs": ["127.0.0.1/32"]}  # the gateway's X-Forwarded-*
    http = yaml.safe_load(balancer.dynamic_file.read_text())["http"]
    assert http["routers"]["pipelines"] == {
        "entryPoints": ["pipelines"],
        "rule": "PathPrefix(`/`)",
        "priority": 1,
        "service": "pipelines",
        "middlewares": ["retry"],
    }
    # Retried on Traefik's own 502 (a replica died with the request written to it): GET/HEAD only
    # (Traefik's status retry skips only POST/PATCH/LOCK: PUT/DELETE need a router of their own).
    reads = http["routers"]["pipelines-reads"]
    assert reads["rule"] == "Method(`GET`) || Method(`HEAD`)" and reads["priority"] > 1
    assert reads["middlewares"] == ["retry-reads"] and reads["service"] == "pipelines"
    assert "status" not in http["middlewares"]["retry"]["retry"]
    retry = http["middlewares"]["retry-reads"]["retry"]
    assert retry["status"] == ["502"] and "retryNonIdempotentMethod" not in retry
    lb = http["services"]["pipelines"]["loadBalancer"]
    assert lb["servers"] == [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2"}]
    assert lb["healthCheck"]["path"] == "/healthz"
