"""The JetStream pull consumer on its own: bounded concurrency, ack/nak/term, unexpected
errors redelivered, a clean stop, and recovery from a NATS restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from icp_common import nats as nats_helpers
from icp_common.settings import NatsSettings
from icp_notifications.consumers import Ack, ConsumerSpec, Nak, PullConsumer, Term


@pytest.fixture
async def stream(nc):
    prefix = f"ct{uuid.uuid4().hex[:8]}"
    await nats_helpers.ensure_stream(nc, nats_helpers.StreamSpec(prefix.upper(), [f"{prefix}.>"]))
    spec = ConsumerSpec(stream=prefix.upper(), subject=f"{prefix}.events", durable=f"d-{prefix}", ack_wait_seconds=5)
    yield spec
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_stream(prefix.upper())


async def publish(nc, spec, count):
    js = nc.jetstream()
    for i in range(count):
        await js.publish(spec.subject, str(i).encode())


async def settled(nc, spec, within=15.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = await nc.jetstream().consumer_info(spec.stream, spec.durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {info}")


async def test_concurrency_is_bounded(nc, stream):
    running, peak, done = 0, 0, []

    async def handler(msg):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(msg.data)
        return Ack()

    consumer = PullConsumer(nc, stream, handler, concurrency=3)
    await consumer.start()
    try:
        await publish(nc, stream, 20)
        await settled(nc, stream)
    finally:
        await consumer.stop()
    assert len(done) == 20
    assert 1 < peak <= 3


async def test_nak_redelivers_after_the_delay_and_term_drops(nc, stream):
    seen: dict[bytes, list[float]] = {}

    async def handler(msg):
        seen.setdefault(msg.data, []).append(time.monotonic())
        if msg.data == b"0":
            return Nak(0.3) if len(seen[msg.data]) < 3 else Ack()
        return Term("poison")

    consumer = PullConsumer(nc, stream, handler)
    await consumer.start()
    try:
        await publish(nc, stream, 2)
        await settled(nc, stream)
    finally:
        await consumer.stop()
    assert len(seen[b"0"]) == 3
    gaps = [b - a for a, b in zip(seen[b"0"], seen[b"0"][1:], strict=False)]
    assert all(gap >= 0.25 for gap in gaps), gaps
    assert len(seen[b"1"]) == 1


async def test_an_unexpected_error_is_retried(nc, stream, caplog):
    calls = 0

    async def handler(msg):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        return Ack()

    consumer = PullConsumer(nc, stream, handler, error_delay=lambda n: 0.1)
    await consumer.start()
    try:
        await publish(nc, stream, 1)
        await settled(nc, stream)
    finally:
        await consumer.stop()
    assert calls == 2
    assert any("database went away" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_stop_lets_messages_in_flight_finish(nc, stream):
    started, finished = asyncio.Event(), []

    async def handler(msg):
        started.set()
        await asyncio.sleep(0.5)
        finished.append(msg.data)
        return Ack()

    consumer = PullConsumer(nc, stream, handler)
    await consumer.start()
    await publish(nc, stream, 1)
    await asyncio.wait_for(started.wait(), 10)
    await consumer.stop(grace=5)
    assert finished == [b"0"]  # finished before stop() returned
    await settled(nc, stream)  # and acknowledged


async def test_waits_for_the_stream_to_exist(nc):
    prefix = f"cw{uuid.uuid4().hex[:8]}"
    spec = ConsumerSpec(stream=prefix.upper(), subject=f"{prefix}.events", durable=f"d-{prefix}")
    got = []

    async def handler(msg):
        got.append(msg.data)
        return Ack()

    consumer = PullConsumer(nc, spec, handler)
    await consumer.start()
    try:
        await asyncio.sleep(0.3)
        assert not consumer.bound
        await nats_helpers.ensure_stream(nc, nats_helpers.StreamSpec(spec.stream, [f"{prefix}.>"]))
        await publish(nc, spec, 1)
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert consumer.bound and got == [b"0"]
    finally:
        await consumer.stop()
        await nc.jetstream().delete_stream(spec.stream)


async def test_keeps_consuming_across_a_nats_restart(nats_server, stream):
    client = await nats_helpers.connect(NatsSettings(url=nats_server.url), name="restart-test")
    got = []

    async def handler(msg):
        got.append(msg.data)
        return Ack()

    consumer = PullConsumer(client, stream, handler, fetch_timeout=0.5)
    await consumer.start()
    try:
        await publish(client, stream, 1)
        deadline = time.monotonic() + 10
        while len(got) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        nats_server.restart()
        deadline = time.monotonic() + 30
        while True:  # JetStream answers again once the server has recovered its streams
            try:
                await publish(client, stream, 1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert got == [b"0", b"0"]
    finally:
        await consumer.stop()
        await client.close()
