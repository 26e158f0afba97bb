"""Leader election with a PostgreSQL session-level advisory lock.

The replica that holds the lock (on a connection of its own) is the leader; the others retry
every `retry_interval`. PostgreSQL releases the lock when the leader's connection ends (crash,
kill), so a standby takes over within a retry interval. A leader that stops answering without
closing its connection (frozen, its node or network gone) would keep the lock until the
server's TCP keepalive notices, hours by default: its connection has an `idle_session_timeout`
(`idle_timeout`: 5 x `check_interval`, at least 5 s) that its own checks never reach, so the
server ends it and a standby takes over within that plus a retry interval. The leader checks its
connection every `check_interval` and steps down as soon as it is broken. Every job of the leader
is also safe on its own when two leaders overlap for a moment (row locks, guarded transitions)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from ..execution import metrics

log = logging.getLogger(__name__)

LOCK_KEY = zlib.crc32(b"interloper:pipelines-scheduler")


class LeaderElection:
    def __init__(
        self,
        engine: AsyncEngine,
        lead: Callable[[], Coroutine[Any, Any, None]],
        *,
        retry_interval: float,
        check_interval: float,
        name: str = "",
    ) -> None:
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.lead = lead
        self.retry_interval = retry_interval
        self.check_interval = check_interval
        # Visible in pg_stat_activity next to the lock: which process leads.
        self.name = name or f"pipelines-scheduler:{socket.gethostname()}:{os.getpid()}"
        self.idle_timeout = max(5.0, 5 * check_interval)
        self.is_leader = False
        self.terms = 0

    async def run(self) -> None:
        """Forever: wait for the lock, lead until the connection is lost, start again."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                settings = {"application_name": self.name, "idle_session_timeout": f"{int(self.idle_timeout * 1000)}"}
                conn = await asyncpg.connect(self.dsn, server_settings=settings, timeout=10)
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                    await self._lead_while_connected(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler leader election: %s; retrying", exc)
            finally:
                if self.is_leader:
                    log.warning("scheduler stepped down")
                self.is_leader = False
                metrics.SCHEDULER_LEADER.set(0)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(self.retry_interval)

    async def _lead_while_connected(self, conn: asyncpg.Connection) -> None:
        self.is_leader = True
        metrics.SCHEDULER_LEADER.set(1)
        self.terms += 1
        log.info("scheduler is the leader (term %d)", self.terms)
        work: asyncio.Task[None] = asyncio.create_task(self.lead(), name="scheduler-leader-work")
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=self.check_interval)
                if work.done():
                    break
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=max(2.0, self.check_interval))
            work.result()  # the jobs never return: surface their error
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
