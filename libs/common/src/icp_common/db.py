"""Database plumbing: engine, sessions, the unit of work, creating the database on first start,
and running a service's Alembic migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .settings import PostgresSettings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10, fixed: bool = False) -> AsyncEngine:
    """`fixed`: exactly `pool_size` connections (a service process, with `fill_pool`), reused last
    in, first out. Otherwise up to twice as many, the extra ones closed when returned (tools,
    tests). Overflow connections replaced warm backends by fresh ones after every latency spike,
    and FIFO reuse spread rare queries over every backend: each grew its caches in turn."""
    # UTC session time zone: timestamps render as +00:00 like the reference.
    # Looked up at call time: tracing (icp_common.telemetry) wraps it when on.
    return sa_asyncio.create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0 if fixed else pool_size,
        pool_use_lifo=fixed,
        pool_pre_ping=False,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "interloper"}},
    )


async def fill_pool(engine: AsyncEngine, size: int) -> None:
    """Open the pool's `size` kept connections now rather than one by one under load: the number
    of PostgreSQL backends (each a process with its own caches) is then fixed from the start
    instead of growing with every new high of concurrency. A failure (PostgreSQL restarting)
    leaves the pool to fill on demand."""
    opened = []
    try:
        for _ in range(size):
            opened.append(await engine.connect())
    except (OSError, asyncpg.PostgresError, SQLAlchemyError) as exc:
        log.warning("could not open the connection pool in advance (%s); it fills on demand", exc)
    finally:
        for conn in opened:
            await conn.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction per entry point: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


async def ensure_database(settings: PostgresSettings, name: str, *, attempts: int = 30) -> None:
    """Create the service's database if it does not exist (connects to `postgres`)."""
    for attempt in range(attempts):
        try:
            conn = await asyncpg.connect(
                host=settings.host,
                port=settings.port,
                user=settings.user,
                password=settings.password.get_secret_value() or None,
                database="postgres",
                timeout=5,
            )
            break
        except (OSError, asyncpg.PostgresError) as exc:
            if attempt == attempts - 1:
                raise SystemExit(
                    f"cannot reach PostgreSQL at {settings.host}:{settings.port}: {exc}. "
                    "Check INTERLOPER_POSTGRES_HOST/PORT/USER/PASSWORD."
                ) from exc
            await asyncio.sleep(1)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("created database %s", name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another replica created it at the same time
    finally:
        await conn.close()


def run_migrations(migrations_dir: Path, url: str) -> None:
    """`alembic upgrade head` for one service, programmatically (blocking; call in a thread)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


async def prepare_database(settings: PostgresSettings, service: str, migrations_dir: Path) -> str:
    """Create the database if needed and migrate it to head; returns its URL."""
    name = settings.database_name(service)
    await ensure_database(settings, name)
    url = settings.url(name)
    await asyncio.to_thread(run_migrations, migrations_dir, url)
    return url
