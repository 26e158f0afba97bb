"""The stack's PostgreSQL with a superuser password and one role per service: roles own only
their databases, and a data dir from before roles existed (the superuser's tables) is handed
over to the roles on the next start, so an upgraded stack keeps working."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from icp_stack.infra.postgres import PostgresServer
from icp_stack.infra.process import ManagedProcess
from icp_stack.ports import free_port

ROLES = {"interloper_identity": "id-pw", "interloper_pipelines": "pl-pw"}


def dsn(server: PostgresServer, user: str, password: str, db: str) -> str:
    return f"postgresql://{user}:{password}@{server.host}:{server.port}/{db}"


async def test_an_old_data_dir_is_handed_over_to_the_service_roles(infra_tmp_path: Path) -> None:
    port = free_port()
    old = PostgresServer(infra_tmp_path / "data", port, durable=False)
    proc = ManagedProcess(old.spec(), infra_tmp_path / "old.log")
    proc.start()
    try:  # what an earlier stack left: databases and tables of the superuser
        conn = await asyncpg.connect(old.dsn())
        await conn.execute("CREATE DATABASE interloper_identity")
        await conn.close()
        conn = await asyncpg.connect(old.dsn("interloper_identity"))
        await conn.execute("CREATE TYPE mood AS ENUM ('ok')")
        await conn.execute("CREATE TABLE things (id bigserial PRIMARY KEY, mood mood)")
        await conn.execute("CREATE SEQUENCE counter")
        await conn.close()
    finally:
        proc.stop()

    new = PostgresServer(infra_tmp_path / "data", port, durable=False, password="super-pw", roles=ROLES)
    proc = ManagedProcess(new.spec(), infra_tmp_path / "new.log")
    proc.start()
    try:
        conn = await asyncpg.connect(dsn(new, "interloper_identity", "id-pw", "interloper_identity"))
        try:
            await conn.execute("INSERT INTO things (mood) VALUES ('ok')")
            await conn.execute("ALTER TABLE things ADD COLUMN note text")  # a migration as the owner
            await conn.execute("ALTER TYPE mood ADD VALUE 'great'")
            assert await conn.fetchval("SELECT nextval('counter')") == 1
        finally:
            await conn.close()
        # A database the role did not have yet is created for it.
        conn = await asyncpg.connect(dsn(new, "interloper_pipelines", "pl-pw", "interloper_pipelines"))
        assert (
            await conn.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'interloper_pipelines'"
            )
            == "interloper_pipelines"
        )
        await conn.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(dsn(new, "interloper_pipelines", "pl-pw", "interloper_identity"))
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(dsn(new, "postgres", "", "postgres"))
        conn = await asyncpg.connect(dsn(new, "postgres", "super-pw", "postgres"))
        await conn.close()
    finally:
        proc.stop()
    # Started again: the bootstrap is idempotent.
    proc.start()
    proc.stop()
