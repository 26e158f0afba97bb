"""The body of every service's Alembic `env.py`: async online migrations under an advisory
lock, so that several replicas starting at once migrate exactly once."""

from __future__ import annotations

import asyncio
import zlib

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _migrate(connection: Connection, metadata: MetaData, lock_key: int) -> None:
    # A transaction lock, released by the COMMIT of the migrations (`_run_async`) or their
    # rollback: a replica waiting for it then sees the schema at head. A session lock unlocked
    # after the migrations let the next replica in before that COMMIT: it saw no
    # `alembic_version` yet, migrated again and failed ("relation ... already exists").
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, metadata: MetaData, lock_key: int) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_migrate, metadata, lock_key)
            await conn.commit()
    finally:
        await engine.dispose()


def run(metadata: MetaData, service: str) -> None:
    """Call from env.py: `run(models.metadata, "identity")`."""
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run migrations through the service CLI")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    lock_key = zlib.crc32(f"migrations:{service}".encode())
    asyncio.run(_run_async(url, metadata, lock_key))
