"""Fixtures of the shared-library tests: real PostgreSQL and NATS from the stack plugin."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from icp_common.db import ensure_database
from icp_common.settings import NatsSettings, PostgresSettings


@pytest.fixture(scope="session")
def pg_settings(postgres_server: Any) -> PostgresSettings:
    return PostgresSettings(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        password=SecretStr(postgres_server.password or ""),
    )


@pytest.fixture
async def fresh_database(pg_settings: PostgresSettings) -> AsyncIterator[str]:
    """A new empty database per test (cheap: created from template0)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await ensure_database(pg_settings, name)
    yield pg_settings.url(name)


@pytest.fixture(scope="session")
def nats_settings(nats_server: Any) -> NatsSettings:
    return NatsSettings(url=nats_server.url)
