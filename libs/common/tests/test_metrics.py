"""Sampled metrics against real PostgreSQL, NATS and a gRPC server: what /metrics shows is
what the servers say."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common import nats as nats_helpers
from icp_common import nats_monitor
from icp_common.db import create_engine, create_sessionmaker, new_metadata, unit_of_work
from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_common.metrics import Sampler, consumers_probe, outbox_probe, postgres_probe
from icp_common.outbox import Outbox, define_outbox
from icp_common.settings import NatsSettings

metadata = new_metadata()
table = define_outbox(metadata)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_postgres_and_outbox_are_sampled_from_the_services_database(engine: AsyncEngine) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    sampler = Sampler()
    sampler.add("postgres", postgres_probe(service, engine))
    sampler.add("outbox", outbox_probe(service, engine, table.name, lambda: 7))
    assert await sampler.sample()
    assert value("icp_outbox_backlog", service=service) == 0
    assert value("icp_outbox_oldest_age_seconds", service=service) == 0
    assert value("icp_outbox_published_total", service=service) == 7
    commits = value("icp_postgres_transactions_total", service=service, outcome="commit")
    assert commits is not None and commits > 0
    assert value("icp_postgres_up", service=service) == 1
    assert value("icp_postgres_pool_size", service=service) == 2

    outbox = Outbox(table, service)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        await outbox.enqueue_many(session, [])
        for n in range(3):
            await outbox.enqueue(session, "x.y", {"n": n})
    assert await sampler.sample()
    assert value("icp_outbox_backlog", service=service) == 3
    age = value("icp_outbox_oldest_age_seconds", service=service)
    assert age is not None and age >= 0
    # Served by /metrics with the declared types.
    text = generate_latest().decode()
    assert "# TYPE icp_postgres_transactions_total counter" in text
    assert f'icp_outbox_backlog{{service="{service}"}} 3.0' in text


async def test_a_failing_probe_is_counted_and_keeps_the_others(engine: AsyncEngine) -> None:
    async def broken() -> None:
        raise OSError("refused")

    sampler = Sampler()
    sampler.add("broken-test", broken)
    sampler.add("outbox", outbox_probe("svc-ok", engine, table.name, lambda: 0))
    before = value("icp_metrics_sample_errors_total", probe="broken-test") or 0
    assert not await sampler.sample()
    assert value("icp_metrics_sample_errors_total", probe="broken-test") == before + 1
    assert value("icp_outbox_backlog", service="svc-ok") == 0


async def test_consumer_lag_and_redeliveries_come_from_jetstream(nats_settings: NatsSettings) -> None:
    nc = await nats_helpers.connect(nats_settings, "metrics-test")
    prefix = f"m{uuid.uuid4().hex[:8]}"
    stream = prefix.upper()
    try:
        await nats_helpers.ensure_stream(nc, nats_helpers.StreamSpec(stream, [f"{prefix}.>"]))
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{prefix}.>", durable="d", stream=stream)
        await js.publish(f"{prefix}.a", b"0")
        first = (await sub.fetch(1, timeout=5))[0]
        await first.nak()  # redelivered next time
        again = await sub.fetch(1, timeout=5)
        assert again[0].metadata.num_delivered == 2
        for n in range(4):  # not delivered yet: the lag
            await js.publish(f"{prefix}.a", str(n).encode())
        sampler = Sampler()
        sampler.add("consumers", consumers_probe("svc", nc, [(stream, "d")]))
        assert await sampler.sample()
        labels = {"service": "svc", "stream": stream, "consumer": "d"}
        assert value("icp_jetstream_consumer_pending", **labels) == 4
        assert value("icp_jetstream_consumer_ack_pending", **labels) == 1
        assert value("icp_jetstream_consumer_redelivered", **labels) == 1
        await again[0].ack()
    finally:
        await nc.jetstream().delete_stream(stream)
        await nc.close()


async def test_nats_monitoring_endpoint_is_translated(nats_server: Any) -> None:
    nc = await nats_helpers.connect(NatsSettings(url=nats_server.url), "monitor-test")
    prefix = f"n{uuid.uuid4().hex[:8]}"
    stream = prefix.upper()
    try:
        await nats_helpers.ensure_stream(nc, nats_helpers.StreamSpec(stream, [f"{prefix}.>"]))
        js = nc.jetstream()
        await js.pull_subscribe(f"{prefix}.>", durable="watched", stream=stream)
        await js.publish(f"{prefix}.a", b"1")
        url = f"http://{nats_server.host}:{nats_server.monitor_port}"
        sampler = Sampler()
        sampler.add("nats", nats_monitor.probe(url))
        assert await sampler.sample()
        assert value("icp_nats_monitor_up", server_id=url) == 1
        connections = value("gnatsd_varz_connections", server_id=url)
        assert connections is not None and connections >= 1
        assert value("icp_nats_jetstream_stream_messages", server_id=url, stream=stream) == 1
        assert value("icp_nats_jetstream_consumer_pending", server_id=url, stream=stream, consumer="watched") == 1
        await js.delete_stream(stream)
        assert await sampler.sample()  # a stream that is gone leaves no series behind
        assert value("icp_nats_jetstream_stream_messages", server_id=url, stream=stream) is None
    finally:
        await nc.close()
    down = Sampler()
    down.add("nats", nats_monitor.probe("http://127.0.0.1:9"))
    assert not await down.sample()
    assert value("icp_nats_monitor_up", server_id="http://127.0.0.1:9") == 0


async def test_grpc_calls_are_counted_by_method_and_code() -> None:
    secret = b"s" * 32
    server, _, port = await start_server(0, lambda _: None, secret=secret, signer=IdentitySigner(secret))
    labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
    ok_before = value("icp_grpc_server_handled_total", **labels, grpc_code="OK") or 0
    missing_before = value("icp_grpc_server_handled_total", **labels, grpc_code="NOT_FOUND") or 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest())
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"))
    finally:
        await server.stop(grace=None)
    assert value("icp_grpc_server_handled_total", **labels, grpc_code="OK") == ok_before + 1
    assert value("icp_grpc_server_handled_total", **labels, grpc_code="NOT_FOUND") == missing_before + 1
    count = value("icp_grpc_server_handling_seconds_count", **labels)
    assert count is not None and count >= 2


@pytest.mark.parametrize("yields", [0, 1, 2, 3])
async def test_stop_ends_the_sampler_when_a_probe_ends_as_it_is_cancelled(yields: int) -> None:
    """A probe ending just as stop() cancels the sampler: on Python 3.11 asyncio.wait_for then
    returns the probe's result and the cancellation is lost, so stop() waited for ever and the
    service's shutdown hung (seen in the notifications suite)."""
    import asyncio

    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def probe() -> None:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()

    sampler = Sampler(interval=0.01)
    sampler.add("ending", probe)
    await sampler.start()
    await entered.wait()
    release.set()
    for _ in range(yields):
        await asyncio.sleep(0)
    stopping = asyncio.create_task(sampler.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)  # a hang, not a duration, is the failure
    assert stopping in done, "stop() hangs"
    stopped_at = calls
    await asyncio.sleep(0.1)  # ten intervals: a sampler still running would probe again
    assert calls == stopped_at
