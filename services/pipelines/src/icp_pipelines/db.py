"""The pipelines service's database: metadata (with the outbox), the ORM base, its migrations, and
the retried unit of work of the background processes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from icp_common.audit import Auditor
from icp_common.db import new_metadata, unit_of_work
from icp_common.idempotency import IdempotencyKeys, define_idempotency_keys
from icp_common.outbox import Outbox, define_outbox

log = logging.getLogger(__name__)

SERVICE = "pipelines"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)
auditor = Auditor(outbox)  # audit entries, in the transaction of the change (icp_common.audit)
idempotency_keys = IdempotencyKeys(define_idempotency_keys(metadata))


class Base(DeclarativeBase):
    """ORM base of every pipelines table (one metadata, one naming convention)."""

    metadata = metadata


T = TypeVar("T")
RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock
# The server went away or is (re)starting: connection exceptions (08...), admin/crash shutdown,
# "the database system is starting up / shutting down".
OUTAGE_SQLSTATES = ("57P01", "57P02", "57P03")


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


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or the connection was lost (refused,
    reset, closed mid-statement or mid-commit, server shutting down or starting up), as opposed
    to an error of the statement itself (constraint, syntax, data), which no retry can fix."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = _sqlstate(current)
        if state.startswith("08") or state in OUTAGE_SQLSTATES:
            return True
        if isinstance(current, OperationalError | InterfaceError | asyncpg.InterfaceError | OSError):
            return True
        if isinstance(current, DBAPIError) and current.orig is not None and current.orig is not current:
            current = current.orig
        else:
            current = current.__cause__ or current.__context__
    return False


async def ride_out(
    sessions: async_sessionmaker[AsyncSession],
    window: float,
    work: Callable[..., Awaitable[T]],
    *args: Any,
    **kwargs: Any,
) -> T:
    """`with_retry`, also retried through a database outage of up to `window` seconds
    (exponential backoff from 0.05 s, capped at 1 s so that the write lands within a second of
    the server's return). Then the last error is raised. A commit whose outcome is unknown (the
    connection dropped during COMMIT) is retried too: `work` must be idempotent (the run
    lifecycle's writes are: see `runs.lifecycle`)."""
    deadline = time.monotonic() + window
    delay = 0.05
    while True:
        try:
            return await with_retry(sessions, work, *args, **kwargs)
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() + delay > deadline:
                raise
            if delay == 0.05:  # once per outage, not per attempt
                log.warning("database unavailable (%s: %s); retrying %s", type(exc).__name__, exc, _name(work))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _name(work: Callable[..., Any]) -> str:
    return str(getattr(work, "__qualname__", None) or work)
