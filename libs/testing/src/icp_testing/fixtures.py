"""Building blocks the services' test suites shared by copy: a migrated database of one service on
the stack plugin's PostgreSQL, a NATS client with the service's streams, and a counter of the SQL
statements an engine sends. Each suite keeps its own pytest fixtures (names, scopes) on top of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common import nats as nats_helpers
from icp_common.db import run_migrations
from icp_common.nats import StreamSpec
from icp_common.settings import NatsSettings


async def migrated_database(postgres_server: Any, prefix: str, migrations_dir: Path) -> str:
    """A new database `<prefix>_<random>` on the plugin's PostgreSQL, migrated to head; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await postgres_server.acreate_database(name)
    url: str = postgres_server.url(name)
    await asyncio.to_thread(run_migrations, migrations_dir, url)
    return url


@asynccontextmanager
async def nats_client(nats_server: Any, name: str, streams: Sequence[StreamSpec] = ()) -> AsyncIterator[NATS]:
    """A client of the plugin's nats-server with `streams` ensured, closed on exit."""
    nc = await nats_helpers.connect(NatsSettings(url=nats_server.url), name=name)
    try:
        for spec in streams:
            await nats_helpers.ensure_stream(nc, spec)
        yield nc
    finally:
        await nats_helpers.close(nc)


@dataclass
class QueryCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[QueryCounter]:
    """`with count_statements(engine) as counter:` records the SQL statements sent meanwhile."""
    counter = QueryCounter()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counter.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
