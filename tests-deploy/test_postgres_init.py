"""deploy/postgres/init-roles.sh (compose's PostgreSQL init script) against a real server: one
role per service owning its database, no role opens another's, and it can run again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from icp_stack.infra.postgres import PostgresServer, bin_dir
from icp_stack.infra.process import ManagedProcess
from icp_stack.ports import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "init-roles.sh"
SERVICES = ("identity", "pipelines", "notifications", "agent")


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, check=False)


async def test_init_roles_script(infra_tmp_path: Path) -> None:
    server = PostgresServer(infra_tmp_path / "data", free_port(), durable=False)
    proc = ManagedProcess(server.spec(), infra_tmp_path / "pg.log")
    proc.start()
    try:
        env = {
            **os.environ,
            "PATH": f"{bin_dir()}{os.pathsep}{os.environ['PATH']}",
            "PGHOST": server.host,
            "PGPORT": str(server.port),
            "POSTGRES_USER": server.user,
            **{f"POSTGRES_{s.upper()}_PASSWORD": f"pw-{s}" for s in SERVICES},
        }
        for _ in range(2):  # idempotent
            result = run_script(env)
            assert result.returncode == 0, result.stderr
        for service in SERVICES:
            role = f"interloper_{service}"
            conn = await asyncpg.connect(host=server.host, port=server.port, user=role, database=role)
            try:
                await conn.execute("CREATE TABLE migrated (id int)")  # the owner runs its migrations
                assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            finally:
                await conn.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(
                host=server.host, port=server.port, user="interloper_identity", database="interloper_pipelines"
            )
        missing = {k: v for k, v in env.items() if k != "POSTGRES_AGENT_PASSWORD"}
        result = run_script(missing)
        assert result.returncode != 0 and "POSTGRES_AGENT_PASSWORD" in result.stderr
    finally:
        proc.stop()


def test_kubernetes_runs_the_same_script() -> None:
    copy = SCRIPT.parents[1] / "k8s" / "components" / "postgres" / "init-roles.sh"
    assert copy.read_text(encoding="utf-8") == SCRIPT.read_text(encoding="utf-8")
