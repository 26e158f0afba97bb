"""Each service has its own PostgreSQL role owning only its database: a service's credentials
(as a compromised service, or a leaked environment, would have them) open no other database,
and the server wants a password over TCP."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from icp_stack.pytest_plugin import StackHandle

SERVICES = ("identity", "pipelines", "notifications", "agent")


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_opens_only_its_own_database(stack: StackHandle, service: str) -> None:
    role = f"interloper_{service}"
    own = await asyncpg.connect(stack.postgres_dsn(role, role))
    try:
        assert await own.fetchval("SELECT current_user") == role
        assert await own.fetchval("SELECT count(*) FROM alembic_version") == 1  # its migrated tables
        assert not await own.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await own.close()
    for other in SERVICES:
        if other == service:
            continue
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
            await asyncpg.connect(stack.postgres_dsn(role, f"interloper_{other}"))


async def test_the_identity_role_cannot_read_the_pipelines_database(stack: StackHandle) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(stack.postgres_dsn("interloper_identity", "interloper_pipelines"))


@pytest.mark.parametrize("user", ["postgres", "interloper_identity"])
@pytest.mark.parametrize("password", ["", "guessed"])
async def test_no_connection_without_the_password(stack: StackHandle, user: str, password: str) -> None:
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        await asyncpg.connect(stack.postgres_dsn(user, "postgres", password=password))


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_services_run_as_their_roles(stack: StackHandle) -> None:
    for name, role in [("identity", "interloper_identity"), ("pipelines-worker", "interloper_pipelines")]:
        assert environ_of(stack.component(name)["pid"])["INTERLOPER_POSTGRES_USER"] == role
    gateway = environ_of(stack.component("gateway")["pid"])
    assert "INTERLOPER_POSTGRES_USER" not in gateway and "INTERLOPER_POSTGRES_PASSWORD" not in gateway
