"""The session fixtures of icp_stack.pytest_plugin against the real servers."""

import asyncio
import uuid

import asyncpg
import nats
from nats.js.api import StorageType, StreamConfig

from icp_stack.pytest_plugin import NatsHandle, PostgresHandle


async def test_postgres_fixture_select_1(postgres_server: PostgresHandle) -> None:
    conn = await asyncpg.connect(postgres_server.dsn())
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()
    assert postgres_server.url("x").startswith("postgresql+asyncpg://postgres")
    assert postgres_server.url("x").endswith(f"@{postgres_server.host}:{postgres_server.port}/x")


async def test_postgres_create_database_is_idempotent(postgres_server: PostgresHandle) -> None:
    name = f"t_{uuid.uuid4().hex[:8]}"
    assert postgres_server.create_database(name) is True
    assert await postgres_server.acreate_database(name) is False
    conn = await asyncpg.connect(postgres_server.dsn(name))
    try:
        assert await conn.fetchval("SELECT current_database()") == name
    finally:
        await conn.close()
    postgres_server.drop_database(name)


def test_postgres_create_database_from_sync_code(postgres_server: PostgresHandle) -> None:
    name = f"s_{uuid.uuid4().hex[:8]}"
    assert postgres_server.create_database(name) is True
    assert postgres_server.create_database(name) is False
    env = postgres_server.env()
    assert env["INTERLOPER_POSTGRES_PORT"] == str(postgres_server.port)


async def test_nats_fixture_jetstream_publish_and_get(nats_server: NatsHandle) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        stream = f"T{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE))
        ack = await js.publish(f"{stream}.a", b"hello", headers={"Nats-Msg-Id": "m1"})
        dup = await js.publish(f"{stream}.a", b"hello", headers={"Nats-Msg-Id": "m1"})
        assert dup.duplicate and dup.seq == ack.seq
        msg = await js.get_msg(stream, ack.seq)
        assert msg.data == b"hello"
    finally:
        await nc.close()


async def test_nats_fixture_survives_an_outage(nats_server: NatsHandle) -> None:
    """stop()/start() keep address and JetStream store: a reconnecting client carries on."""
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(
        nats_server.url, reconnect_time_wait=0.2, max_reconnect_attempts=-1, reconnected_cb=on_reconnect
    )
    try:
        js = nc.jetstream()
        stream = f"O{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE))
        ack = await js.publish(f"{stream}.x", b"before")
        nats_server.stop()
        assert not nats_server.running
        nats_server.start()
        assert nats_server.running
        await asyncio.wait_for(reconnected.wait(), 15)
        assert (await js.get_msg(stream, ack.seq)).data == b"before"
        ack2 = await js.publish(f"{stream}.x", b"after")
        assert ack2.seq == ack.seq + 1
    finally:
        await nc.close()
