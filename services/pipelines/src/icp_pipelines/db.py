"""The pipelines service's database: metadata (with the outbox), the ORM base, its migrations, and
the retried unit of work of the background processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from icp_common.db import new_metadata, unit_of_work
from icp_common.outbox import Outbox, define_outbox

SERVICE = "pipelines"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)


class Base(DeclarativeBase):
    """ORM base of every pipelines table (one metadata, one naming convention)."""

    metadata = metadata


T = TypeVar("T")
RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock


async def with_retry(
    sessions: async_sessionmaker[AsyncSession], work: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """`await work(session, *args, **kwargs)` in one transaction, again on a deadlock or a
    serialization failure (a few attempts). The worker's and the scheduler's unit of work."""
    attempts = 5
    for attempt in range(attempts):
        try:
            async with unit_of_work(sessions) as session:
                return await work(session, *args, **kwargs)
        except DBAPIError as exc:
            state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
            if state not in RETRYABLE_SQLSTATES or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
