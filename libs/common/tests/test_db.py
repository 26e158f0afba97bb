"""Database helpers: database creation, migrations, the unit of work."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import Column, Integer, Table, event, select, text
from sqlalchemy.engine import Connection, Engine

from icp_common.db import (
    create_engine,
    create_sessionmaker,
    ensure_database,
    new_metadata,
    prepare_database,
    run_migrations,
    unit_of_work,
)
from icp_common.resources import ServiceResources
from icp_common.settings import PostgresSettings, ServiceSettings

MIGRATION = """
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("widget", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("widget")
"""

ENV = """
from icp_common.migrations_env import run
from sqlalchemy import MetaData

run(MetaData(), "widgets")
"""


async def test_ensure_database_is_idempotent(pg_settings: PostgresSettings) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await ensure_database(pg_settings, name)
    await ensure_database(pg_settings, name)
    conn = await asyncpg.connect(host=pg_settings.host, port=pg_settings.port, user=pg_settings.user, database=name)
    await conn.close()


async def test_prepare_database_runs_migrations_once(pg_settings: PostgresSettings, tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_widget.py").write_text(MIGRATION)
    settings = pg_settings.model_copy(update={"database": f"t_{uuid.uuid4().hex[:12]}"})
    url = await prepare_database(settings, "widgets", tmp_path)
    assert await prepare_database(settings, "widgets", tmp_path) == url  # second start: nothing to do
    widget = Table("widget", new_metadata(), Column("id", Integer, primary_key=True))
    engine = create_engine(url)
    try:
        sessions = create_sessionmaker(engine)
        async with unit_of_work(sessions) as session:
            await session.execute(widget.insert().values(id=1))
        try:
            async with unit_of_work(sessions) as session:
                await session.execute(widget.insert().values(id=2))
                raise ValueError("roll me back")
        except ValueError:
            pass
        async with unit_of_work(sessions) as session:
            assert (await session.scalars(select(widget.c.id))).all() == [1]
    finally:
        await engine.dispose()


async def test_the_migration_lock_is_held_until_the_migration_commits(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """Several processes of a service start together (`--replicas`, a Deployment's pods) and each
    migrates under one advisory lock. It was released before the migration's COMMIT, so the next
    replica could see no `alembic_version` yet, migrate again and fail with "relation ... already
    exists" (seen with `interloper-stack up --replicas pipelines=2`). At the COMMIT, the lock is
    still held (a transaction lock: released by the COMMIT itself)."""
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_widget.py").write_text(MIGRATION)
    name = f"t_{uuid.uuid4().hex[:12]}"
    await ensure_database(pg_settings, name)
    held: list[int] = []

    def on_commit(connection: Connection) -> None:
        locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        held.append(connection.exec_driver_sql(locks).scalar_one())

    event.listen(Engine, "commit", on_commit)
    try:
        await asyncio.to_thread(run_migrations, tmp_path, pg_settings.url(name))
    finally:
        event.remove(Engine, "commit", on_commit)
    assert held == [1]


async def test_service_pool_is_opened_at_start_and_keeps_its_backends(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """The soak's PostgreSQL growth: pools opened backends one by one as latency spikes raised the
    concurrency, and overflow connections replaced warm backends by fresh ones. A service now
    opens its pool_size connections at start and keeps exactly those: a burst beyond them waits
    for one, and the same backend processes serve before and after it."""
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_widget.py").write_text(MIGRATION)
    database = f"t_{uuid.uuid4().hex[:12]}"
    settings = ServiceSettings(postgres=pg_settings.model_copy(update={"database": database, "pool_size": 4}))
    resources = ServiceResources("widgets", settings, migrations_dir=tmp_path, use_nats=False)
    admin = await asyncpg.connect(
        host=pg_settings.host,
        port=pg_settings.port,
        user=pg_settings.user,
        password=pg_settings.password.get_secret_value() or None,
        database="postgres",
    )

    async def backends() -> set[int]:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'interloper'"
        return {row["pid"] for row in await admin.fetch(query, database)}

    await resources.start()
    try:
        assert resources.engine is not None
        before = await backends()
        assert len(before) == 4  # before any request
        engine = resources.engine
        busy_at_once = 0
        most = 0

        async def busy() -> None:
            nonlocal busy_at_once, most
            async with engine.connect() as conn:
                busy_at_once += 1
                most = max(most, busy_at_once)
                await conn.execute(text("SELECT pg_sleep(0.1)"))
                busy_at_once -= 1

        await asyncio.gather(*(busy() for _ in range(12)))  # three times the pool
        assert most == 4
        assert await backends() == before
    finally:
        await resources.stop()
        await admin.close()


async def test_every_pooled_connection_has_run_the_background_statements_at_start(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """`make soak`: a spare pooled connection first ran the metrics probe's statements when two
    background loops overlapped, minutes into the run, and its backend grew +41 % filling its
    caches. Every kept connection now runs them once at start."""
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_widget.py").write_text(MIGRATION)
    database = f"t_{uuid.uuid4().hex[:12]}"
    settings = ServiceSettings(postgres=pg_settings.model_copy(update={"database": database, "pool_size": 4}))
    resources = ServiceResources("widgets", settings, migrations_dir=tmp_path, use_nats=False)
    await resources.start()
    try:
        assert resources.engine is not None
        held = [await resources.engine.connect() for _ in range(4)]
        # (the pattern is split so that this query, prepared too, does not match itself)
        prepared = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM pg_stat_' || 'database%'"
        counts = [(await conn.execute(text(prepared))).scalar_one() for conn in held]
        pids = {(await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() for conn in held}
        for conn in held:
            await conn.close()
        assert len(pids) == 4 and all(count >= 1 for count in counts), counts
    finally:
        await resources.stop()
