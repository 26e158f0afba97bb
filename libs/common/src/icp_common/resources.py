"""The infrastructure one service process holds: its database, NATS, and outbox relay.

Started in the app's lifespan (or a worker's main) and handed to the service code; it also
provides the readiness checks for `/readyz`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from sqlalchemy import Table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from . import nats as nats_helpers
from . import nats_monitor
from .db import create_engine, create_sessionmaker, fill_pool, prepare_database
from .metrics import Probe, Sampler, consumers_probe, outbox_probe, postgres_probe
from .outbox import OutboxRelay
from .settings import ServiceSettings
from .web import ReadinessCheck

log = logging.getLogger(__name__)


@dataclass
class ServiceResources:
    service: str
    settings: ServiceSettings
    migrations_dir: Path | None = None
    outbox_table: Table | None = None
    streams: list[nats_helpers.StreamSpec] = field(default_factory=list)
    use_nats: bool = True
    relay_wakes_on_commit: bool = True  # see OutboxRelay.wake_on_commit
    # The durable JetStream consumers (stream, durable) this service reads: their lag is sampled.
    consumers: list[tuple[str, str]] = field(default_factory=list)
    # More values to sample for /metrics (name -> probe), e.g. the pipelines scheduler's run queue.
    probes: dict[str, Probe] = field(default_factory=dict)

    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    nc: NATS | None = None
    relay: OutboxRelay | None = None
    sampler: Sampler | None = None

    async def start(self) -> None:
        pg = self.settings.postgres
        if self.migrations_dir is not None:
            url = await prepare_database(pg, self.service, self.migrations_dir)
            self.engine = create_engine(url, pool_size=pg.pool_size, fixed=True)
            await fill_pool(self.engine, pg.pool_size)
            self.sessions = create_sessionmaker(self.engine)
            log.info("database %s ready", pg.database_name(self.service))
        if self.use_nats:
            self.nc = await nats_helpers.connect(self.settings.nats, name=self.service)
            for spec in self.streams:
                await nats_helpers.ensure_stream(self.nc, spec)
            log.info(
                "connected to NATS at %s as %s",
                self.settings.nats.display_url(),
                self.settings.nats.username() or "anonymous",
            )
        if self.outbox_table is not None and self.engine is not None and self.nc is not None:
            self.relay = OutboxRelay(
                self.engine, self.nc, self.outbox_table, self.service, wake_on_commit=self.relay_wakes_on_commit
            )
            await self.relay.start()
        await self._start_sampler()
        if self.engine is not None:
            await self._warm_pool(self.settings.postgres.pool_size)

    async def _warm_pool(self, size: int) -> None:
        """Every kept connection runs the background loops' statements (metrics probes, outbox
        relay) once now. On the LIFO pool those loops use the top connection, but when two overlap
        a spare one serves, and a backend running a statement for the first time fills its caches
        (~0.5 MB: `make soak` saw a notifications backend grow +41 % that way, hours into a run).
        Holding the top k connections makes the next checkout the (k+1)-th. Best effort."""
        assert self.engine is not None
        held: list[AsyncConnection] = []
        try:
            for _ in range(size):
                if self.sampler is not None:
                    await self.sampler.sample()
                if self.relay is not None:
                    await self.relay.publish_batch()
                    await self.relay.publish_batch(wait=True)
                held.append(await self.engine.connect())
        except (OSError, TimeoutError, asyncpg.PostgresError, SQLAlchemyError, nats_errors.Error) as exc:
            log.info("connection pool not warmed (%s); its connections warm up as they are used", exc)
        finally:
            for conn in held:
                await conn.close()

    async def _start_sampler(self) -> None:
        sampler = self.sampler = Sampler(self.settings.metrics.interval_seconds)
        if self.engine is not None:
            sampler.add("postgres", postgres_probe(self.service, self.engine))
            if self.outbox_table is not None:
                relay = self.relay
                sampler.add(
                    "outbox",
                    outbox_probe(
                        self.service, self.engine, self.outbox_table.name, lambda: relay.published_total if relay else 0
                    ),
                )
        if self.nc is not None and self.consumers:
            sampler.add("consumers", consumers_probe(self.service, self.nc, self.consumers))
        if self.settings.metrics.nats_monitor_url:
            sampler.add("nats", nats_monitor.probe(self.settings.metrics.nats_monitor_url))
        for name, probe in self.probes.items():
            sampler.add(name, probe)
        await sampler.start()

    async def stop(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.nc is not None:
            await nats_helpers.close(self.nc)
        if self.engine is not None:
            await self.engine.dispose()

    def checks(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {}
        if self.migrations_dir is not None:
            checks["postgres"] = self._check_postgres
        if self.use_nats:
            checks["nats"] = self._check_nats
        return checks

    async def _check_postgres(self) -> bool:
        if self.engine is None:
            return False
        async with self.engine.connect() as conn:
            return bool((await conn.scalar(text("SELECT 1"))) == 1)

    async def _check_nats(self) -> bool:
        return self.nc is not None and self.nc.is_connected
