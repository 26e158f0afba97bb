"""Identity's durable consumer of the AUDIT stream (entries of the other services) and the
retention sweep. A message is acknowledged after its entry is committed; a redelivery is
stored once (the entry id is the primary key)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.db import unit_of_work
from icp_common.streams import AUDIT, AUDIT_DURABLE

from . import store

log = logging.getLogger(__name__)

BATCH = 100
SWEEP_INTERVAL_SECONDS = 3600.0


class AuditConsumer:
    def __init__(self, nc: NATS, sessions: async_sessionmaker[AsyncSession], retention_days: int) -> None:
        self.nc = nc
        self.sessions = sessions
        self.retention_days = retention_days
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(), name="audit-consumer"),
            asyncio.create_task(self._sweep(), name="audit-retention"),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _consume(self) -> None:
        js = self.nc.jetstream()
        while not self._stopping.is_set():
            try:
                await js.add_consumer(AUDIT.name, config=AUDIT_DURABLE.config())
                sub = await js.pull_subscribe_bind(durable=AUDIT_DURABLE.name, stream=AUDIT.name)
                while not self._stopping.is_set():
                    try:
                        messages = await sub.fetch(BATCH, timeout=2)
                    except TimeoutError:
                        continue
                    entries = []
                    for msg in messages:
                        try:
                            entry = json.loads(msg.data)
                            store.row_of(entry)  # well formed (else it would fail the batch forever)
                            entries.append(entry)
                        except (ValueError, TypeError, KeyError, AttributeError):
                            log.warning("dropping a malformed audit message on %s", msg.subject)
                    async with unit_of_work(self.sessions) as session:
                        await store.store(session, entries)
                    for msg in messages:
                        await msg.ack()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the audit consumer failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 2.0)

    async def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                async with unit_of_work(self.sessions) as session:
                    deleted = await store.sweep(session, self.retention_days)
                if deleted:
                    log.info("audit retention deleted %d entries", deleted)
            except Exception:
                log.exception("the audit retention sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SWEEP_INTERVAL_SECONDS)
