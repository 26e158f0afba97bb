"""Pure parts of the launcher: option parsing, port choice, environments."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.infra.nats import STACK_GOMEMLIMIT
from icp_stack.launcher import (
    COMPONENTS,
    PORT_KEYS,
    SERVICE_BY_NAME,
    SERVICES,
    StackError,
    StackOptions,
    StackRunner,
    base_env,
    build_plan,
    choose_ports,
    parse_ports,
    parse_without,
    pg_passwords,
    service_env,
)
from icp_stack.ports import free_port


def test_parse_ports() -> None:
    assert parse_ports(["gateway=18000,postgres=5432", "", "nats=4222"]) == {
        "gateway": 18000,
        "postgres": 5432,
        "nats": 4222,
    }
    for bad in ("gateway", "nope=1", "gateway=x", "gateway=70000"):
        with pytest.raises(StackError):
            parse_ports([bad])


def test_parse_without() -> None:
    assert parse_without(["agent,pipelines-worker", "gateway"]) == {"agent", "pipelines-worker", "gateway"}
    with pytest.raises(StackError, match="unknown component"):
        parse_without(["agnet"])


def test_choose_ports_honours_configured_ones_and_never_collides() -> None:
    ports = choose_ports(COMPONENTS, {"gateway": 18000}, 8080)
    assert ports["gateway"] == 18000 and ports["http"] == 8080
    expected = {key for keys in PORT_KEYS.values() for key in keys} | {"http"}
    assert set(ports) == expected
    assert len(set(ports.values())) == len(ports)


def test_environment_user_values_win_only_where_documented() -> None:
    enabled = tuple(c for c in COMPONENTS if c != "agent")
    ports = choose_ports(enabled, {}, 8080)
    user = {
        "INTERLOPER_PUBLIC_URL": "https://interloper.example",
        "INTERLOPER_INTERNAL_SECRET": "given",
        "INTERLOPER_POSTGRES_PORT": "1",
        "INTERLOPER_HTTP_PORT": "2",
        "INTERLOPER_GRPC_PORT": "3",
        "INTERLOPER_ANYTHING": "x",
        "PYTHONPATH": "/catalogs",
        "HTTP_PROXY": "http://proxy:3128",
    }
    env = base_env(ports, enabled, Path("/data"), "http://127.0.0.1:8080", "generated", user)
    assert env["INTERLOPER_PUBLIC_URL"] == "https://interloper.example"
    assert env["INTERLOPER_INTERNAL_SECRET"] == "given"
    assert env["INTERLOPER_AUTH_COOKIE_SECURE"] == "false"
    assert env["INTERLOPER_AUTH_DEV_LOGIN"] == "true"
    assert json.loads(env["INTERLOPER_CATALOG"]) == CATALOG_PATHS  # the demo by default
    assert base_env(ports, enabled, Path("/data"), "u", "s", {"INTERLOPER_CATALOG": "[]"})["INTERLOPER_CATALOG"] == "[]"
    assert env["INTERLOPER_POSTGRES_PORT"] == str(ports["postgres"])
    assert env["INTERLOPER_ANYTHING"] == "x" and env["PYTHONPATH"] == "/catalogs"
    assert "INTERLOPER_AGENT_URL" not in env
    assert env["INTERLOPER_IDENTITY_GRPC_TARGET"] == f"127.0.0.1:{ports['identity-grpc']}"
    assert env["INTERLOPER_SMTP_PORT"] == str(ports["mailcatcher"])
    assert "127.0.0.1" in env["NO_PROXY"].split(",")
    assert "INTERLOPER_HTTP_PORT" not in env and "INTERLOPER_GRPC_PORT" not in env
    identity = service_env(env, SERVICE_BY_NAME["identity"], ports)
    assert identity["INTERLOPER_HTTP_PORT"] == str(ports["identity"])
    assert identity["INTERLOPER_GRPC_PORT"] == str(ports["identity-grpc"])
    gateway = service_env(env, SERVICE_BY_NAME["gateway"], ports)
    assert gateway["INTERLOPER_HTTP_PORT"] == str(ports["gateway"]) and "INTERLOPER_GRPC_PORT" not in gateway


def test_without_postgres_and_nats_lets_the_users_servers_through() -> None:
    enabled = tuple(c for c in COMPONENTS if c not in ("postgres", "nats"))
    ports = choose_ports(enabled, {}, 8080)
    user = {"INTERLOPER_POSTGRES_HOST": "db.internal", "INTERLOPER_NATS_URL": "nats://bus:4222"}
    env = base_env(ports, enabled, Path("/data"), "http://127.0.0.1:8080", "s", user)
    assert env["INTERLOPER_POSTGRES_HOST"] == "db.internal"
    assert env["INTERLOPER_NATS_URL"] == "nats://bus:4222"


def test_the_demo_mints_its_session_as_identitys_database_role(tmp_path: Path) -> None:
    """`--demo` runs `interloper-identity session create` with identity's own PostgreSQL role and
    password: the shared environment has none, and the stack's superuser needs a password."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    for service in SERVICES:  # stand-ins that record the database login they were given
        script = bin_dir / service.command[0]
        script.write_text(
            f'#!/bin/sh\necho "$INTERLOPER_POSTGRES_USER:$INTERLOPER_POSTGRES_PASSWORD" > {seen}\nexit 1\n'
        )
        script.chmod(0o755)
    options = StackOptions(data_dir=tmp_path / "data", http_port=free_port(), bin_dir=bin_dir, demo=True, environ={})
    (tmp_path / "data").mkdir()
    plan = build_plan(options)
    out = io.StringIO()
    runner = StackRunner(plan, out=out, stdout=io.StringIO())
    asyncio.run(runner.set_up_demo())
    password = pg_passwords(plan.data_dir)["interloper_identity"]
    assert password and seen.read_text().strip() == f"interloper_identity:{password}"
    assert runner.demo is None and "the demo pipeline was not set up" in out.getvalue()  # reported, not raised


def test_the_stacks_nats_server_gets_a_go_memory_limit(tmp_path: Path) -> None:
    """nats-server's heap grew with the REALTIME frames it cached (make soak): the stack bounds it
    with GOMEMLIMIT, and a GOMEMLIMIT of the user's environment wins."""
    for environ, expected in (({}, STACK_GOMEMLIMIT), ({"GOMEMLIMIT": "1GiB"}, "1GiB")):
        data = tmp_path / expected
        data.mkdir()
        plan = build_plan(StackOptions(data_dir=data, http_port=free_port(), environ=environ))
        nats = next(c for c in plan.components if c.name == "nats")
        assert nats.spec.env is not None and nats.spec.env["GOMEMLIMIT"] == expected
        if not environ:  # nats-server's own: not given to the other processes
            assert "GOMEMLIMIT" not in (next(c for c in plan.components if c.name == "gateway").spec.env or {})
