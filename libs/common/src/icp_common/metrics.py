"""Prometheus metrics beyond the HTTP requests (those are `icp_common.web`'s): gRPC RED metrics
per method, and values sampled in the background every `INTERLOPER_METRICS_INTERVAL_SECONDS`
(15 s): the service's own PostgreSQL database and connection pool, its outbox backlog, its
JetStream durable consumers' lag, plus any probe a process adds (pipelines: the run queue).

Sampling runs cheap queries on a timer rather than on scrape, so a scrape never waits for the
database or NATS and a scraper cannot make a process query more often. Everything is served by
the process's `/metrics` (internal port only; the public edge never serves it)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]

# ---- gRPC: rate, errors, duration per method ----------------------------------------------------

GRPC_HANDLED = Counter(
    "icp_grpc_server_handled_total",
    "gRPC calls served, by service, method and status code",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "icp_grpc_server_handling_seconds",
    "Time to serve a gRPC call (to its last message for server-streaming calls)",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: counts every call by its final status code (an abort by the inner
    interceptor's error table included) and times it."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        latency = GRPC_SECONDS.labels(service, method)

        def done(context: grpc.aio.ServicerContext, started: float, fallback: str) -> None:
            code = context.code()  # set by an abort or the servicer; else the call's own outcome
            name = code.name if isinstance(code, grpc.StatusCode) else fallback
            GRPC_HANDLED.labels(service, method, name).inc()
            latency.observe(time.perf_counter() - started)

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def timed_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, outcome = time.perf_counter(), "UNKNOWN"
                try:
                    result = await unary(request, context)
                    outcome = "OK"
                    return result
                except asyncio.CancelledError:  # the client went away or its deadline passed
                    outcome = "CANCELLED"
                    raise
                finally:
                    done(context, started, outcome)

            return grpc.unary_unary_rpc_method_handler(
                timed_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def timed_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started, outcome = time.perf_counter(), "UNKNOWN"
                try:
                    async for item in stream(request, context):
                        yield item
                    outcome = "OK"
                except (asyncio.CancelledError, GeneratorExit):
                    outcome = "CANCELLED"
                    raise
                finally:
                    done(context, started, outcome)

            async def timed_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                # A coroutine writing with context.write() (grpc.health.v1's Watch): awaited.
                started, outcome = time.perf_counter(), "UNKNOWN"
                try:
                    await stream(request, context)
                    outcome = "OK"
                except asyncio.CancelledError:
                    outcome = "CANCELLED"
                    raise
                finally:
                    done(context, started, outcome)

            return grpc.unary_stream_rpc_method_handler(
                timed_writer if inspect.iscoroutinefunction(stream) else timed_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client-streaming shapes: refused by the inner interceptor, not counted


# ---- sampled values ---------------------------------------------------------------------------


class Sampled(Collector):
    """Families whose values a probe sets from time to time (gauges, and counters read from a
    server's own cumulative statistics, e.g. pg_stat_database), served as they were last seen."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        self._values: dict[str, dict[tuple[str, ...], float]] = {}

    def define(self, name: str, kind: str, documentation: str, labels: Sequence[str]) -> str:
        self._families.setdefault(name, (kind, documentation, tuple(labels)))
        self._values.setdefault(name, {})
        return name

    def names(self) -> list[str]:
        """Every family defined (as /metrics names them: counters end in `_total`)."""
        return list(self._families)

    def set(self, name: str, labels: Sequence[str], value: float) -> None:
        self._values[name][tuple(labels)] = float(value)

    def forget(self, name: str, keep: Callable[[tuple[str, ...]], bool]) -> None:
        """Drop the series `keep` refuses (a stream or consumer that is gone)."""
        values = self._values[name]
        for key in [k for k in values if not keep(k)]:
            del values[key]

    def collect(self) -> Iterator[Metric]:
        for name, (kind, documentation, labels) in self._families.items():
            values = self._values[name]
            if not values:
                continue
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, documentation, labels=labels)
            else:
                family = GaugeMetricFamily(name, documentation, labels=labels)
            for key, value in list(values.items()):
                family.add_metric(key, value)
            yield family


SAMPLED = Sampled()
REGISTRY.register(SAMPLED)

SAMPLE_ERRORS = Counter("icp_metrics_sample_errors_total", "Probes that failed (the value kept is older)", ["probe"])

# PostgreSQL: the service's own database, from its own connection (no superuser, no exporter).
PG_UP = SAMPLED.define("icp_postgres_up", "gauge", "1 if the service's database answered the last sample", ["service"])
PG_BACKENDS = SAMPLED.define(
    "icp_postgres_connections", "gauge", "Backends connected to the service's database, by state", ["service", "state"]
)
PG_XACT = SAMPLED.define(
    "icp_postgres_transactions_total",
    "counter",
    "Transactions of the service's database (pg_stat_database), by outcome (commit, rollback)",
    ["service", "outcome"],
)
PG_DEADLOCKS = SAMPLED.define(
    "icp_postgres_deadlocks_total", "counter", "Deadlocks detected in the service's database", ["service"]
)
PG_BLOCKS = SAMPLED.define(
    "icp_postgres_blocks_total",
    "counter",
    "Blocks read from disk (read) or found in shared buffers (hit)",
    ["service", "source"],
)
PG_TEMP_BYTES = SAMPLED.define(
    "icp_postgres_temp_bytes_total",
    "counter",
    "Bytes written to temporary files by the database's queries",
    ["service"],
)
PG_SIZE = SAMPLED.define("icp_postgres_database_bytes", "gauge", "Size of the service's database", ["service"])
POOL = SAMPLED.define(
    "icp_postgres_pool_connections",
    "gauge",
    "This process's SQLAlchemy pool: connections in use (checked_out) and idle (checked_in)",
    ["service", "state"],
)
POOL_SIZE = SAMPLED.define("icp_postgres_pool_size", "gauge", "Configured size of this process's pool", ["service"])

# The transactional outbox (`icp_common.outbox`): what the relay has not published yet.
OUTBOX_BACKLOG = SAMPLED.define(
    "icp_outbox_backlog", "gauge", "Outbox rows not yet published to NATS (counted up to 100,000)", ["service"]
)
OUTBOX_AGE = SAMPLED.define(
    "icp_outbox_oldest_age_seconds",
    "gauge",
    "Age of the oldest unpublished outbox row: the relay's lag (0 when the outbox is empty)",
    ["service"],
)
OUTBOX_PUBLISHED = SAMPLED.define(
    "icp_outbox_published_total", "counter", "Outbox rows this process's relay published", ["service"]
)

# JetStream durable consumers this service reads (from the server's consumer info).
CONSUMER_PENDING = SAMPLED.define(
    "icp_jetstream_consumer_pending",
    "gauge",
    "Messages of the stream not yet delivered to the durable consumer (num_pending: its lag)",
    ["service", "stream", "consumer"],
)
CONSUMER_ACK_PENDING = SAMPLED.define(
    "icp_jetstream_consumer_ack_pending",
    "gauge",
    "Messages delivered to the consumer and not yet acknowledged",
    ["service", "stream", "consumer"],
)
CONSUMER_REDELIVERED = SAMPLED.define(
    "icp_jetstream_consumer_redelivered",
    "gauge",
    "Messages delivered more than once and not yet acknowledged (num_redelivered)",
    ["service", "stream", "consumer"],
)
CONSUMER_LAST_ACTIVE = SAMPLED.define(
    "icp_jetstream_consumer_last_delivered_age_seconds",
    "gauge",
    "Seconds since the consumer last got a message (0 if it never did)",
    ["service", "stream", "consumer"],
)

_OUTBOX_COUNT_LIMIT = 100_000


def postgres_probe(service: str, engine: AsyncEngine) -> Probe:
    """pg_stat_database of the service's own database, its backends by state, its size, and this
    process's pool. The role owns the database, so it sees every backend of it."""

    async def probe() -> None:
        pool: Any = engine.pool
        with contextlib.suppress(AttributeError):  # a NullPool (tests) has no counts
            SAMPLED.set(POOL, (service, "checked_out"), pool.checkedout())
            SAMPLED.set(POOL, (service, "checked_in"), pool.checkedin())
            SAMPLED.set(POOL_SIZE, (service,), pool.size())
        try:
            async with engine.connect() as conn:
                stats = (
                    await conn.execute(
                        text(
                            "SELECT xact_commit, xact_rollback, deadlocks, blks_read, blks_hit, temp_bytes,"
                            " pg_database_size(datid) AS size FROM pg_stat_database"
                            " WHERE datname = current_database()"
                        )
                    )
                ).one()
                states = (
                    await conn.execute(
                        text(
                            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() GROUP BY 1"
                        )
                    )
                ).all()
        except Exception:
            SAMPLED.set(PG_UP, (service,), 0)
            raise
        SAMPLED.set(PG_UP, (service,), 1)
        SAMPLED.set(PG_XACT, (service, "commit"), stats.xact_commit)
        SAMPLED.set(PG_XACT, (service, "rollback"), stats.xact_rollback)
        SAMPLED.set(PG_DEADLOCKS, (service,), stats.deadlocks)
        SAMPLED.set(PG_BLOCKS, (service, "read"), stats.blks_read)
        SAMPLED.set(PG_BLOCKS, (service, "hit"), stats.blks_hit)
        SAMPLED.set(PG_TEMP_BYTES, (service,), stats.temp_bytes)
        SAMPLED.set(PG_SIZE, (service,), stats.size)
        SAMPLED.forget(PG_BACKENDS, lambda key: key[0] != service)
        for state, count in states:
            SAMPLED.set(PG_BACKENDS, (service, str(state)), count)

    return probe


def outbox_probe(service: str, engine: AsyncEngine, table: str, published: Callable[[], int]) -> Probe:
    """The backlog (bounded count: one index-only scan of at most 100,000 rows) and the age of the
    oldest row (the first row by primary key, the relay's next one)."""
    query = text(
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT {_OUTBOX_COUNT_LIMIT}) AS b),"
        f" (SELECT extract(epoch FROM now() - created_at) FROM {table} ORDER BY id LIMIT 1)"
    )

    async def probe() -> None:
        SAMPLED.set(OUTBOX_PUBLISHED, (service,), published())
        async with engine.connect() as conn:
            backlog, age = (await conn.execute(query)).one()
        SAMPLED.set(OUTBOX_BACKLOG, (service,), backlog)
        SAMPLED.set(OUTBOX_AGE, (service,), max(0.0, float(age or 0.0)))

    return probe


def consumers_probe(service: str, nc: Any, consumers: Iterable[tuple[str, str]]) -> Probe:
    """Consumer info of each (stream, durable) this service reads: its user may ask for exactly
    those (`$JS.API.CONSUMER.INFO.<stream>.<durable>`)."""
    wanted = list(consumers)
    js = nc.jetstream()

    async def probe() -> None:
        failed: Exception | None = None
        for stream, durable in wanted:
            try:
                info = await js.consumer_info(stream, durable, timeout=2.0)
            except Exception as exc:  # not created yet (its consumer starts later), NATS away
                failed = exc
                continue
            key = (service, stream, durable)
            SAMPLED.set(CONSUMER_PENDING, key, info.num_pending or 0)
            SAMPLED.set(CONSUMER_ACK_PENDING, key, info.num_ack_pending or 0)
            SAMPLED.set(CONSUMER_REDELIVERED, key, info.num_redelivered or 0)
            last = getattr(info.delivered, "last_active", None)
            age = 0.0
            if last is not None:
                with contextlib.suppress(Exception):
                    age = max(0.0, time.time() - last.timestamp())
            SAMPLED.set(CONSUMER_LAST_ACTIVE, key, age)
        if failed is not None:
            raise failed

    return probe


class Sampler:
    """Runs its probes now and then every `interval` seconds, each bounded by a timeout; a failing
    probe is counted and logged once until it recovers, and keeps its last values."""

    def __init__(self, interval: float = 15.0, timeout: float = 5.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self.probes: dict[str, Probe] = {}
        self._failing: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def add(self, name: str, probe: Probe) -> None:
        self.probes[name] = probe

    async def sample(self) -> bool:
        """One round; False if a probe failed."""
        for name, probe in list(self.probes.items()):
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # arrives as the probe ends, and stop() then waited for ever (seen in tests).
                async with asyncio.timeout(self.timeout):
                    await probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                SAMPLE_ERRORS.labels(name).inc()
                if name not in self._failing:
                    log.warning("metrics probe %s failed (%s); retried every %.0f s", name, exc, self.interval)
                self._failing.add(name)
            else:
                self._failing.discard(name)
        return not self._failing

    async def start(self) -> None:
        if self.probes and self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        self._stopping.set()  # ends the loop even if a cancellation were lost
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # A failed probe is retried sooner: at start-up a consumer may not exist yet.
            ok = await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval if ok else min(self.interval, 2.0))
