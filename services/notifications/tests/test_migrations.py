"""The migrations create exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from icp_notifications.db import load_models, metadata


async def test_models_match_migrations(engine):
    load_models()

    def diff(connection):
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
