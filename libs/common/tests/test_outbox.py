"""The transactional outbox against real PostgreSQL and a real JetStream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common import nats as nats_helpers
from icp_common import outbox as outbox_module
from icp_common.context import request_id_var
from icp_common.db import create_engine, create_sessionmaker, new_metadata, unit_of_work
from icp_common.outbox import Outbox, OutboxMessage, OutboxRelay, define_outbox
from icp_common.settings import NatsSettings

metadata = new_metadata()
table = define_outbox(metadata)


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=4)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def nc(nats_settings: NatsSettings) -> AsyncIterator[tuple[NATS, str]]:
    client = await nats_helpers.connect(nats_settings, "outbox-test")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    await nats_helpers.ensure_stream(client, nats_helpers.StreamSpec(prefix.upper(), [f"{prefix}.>"]))
    yield client, prefix
    await client.jetstream().delete_stream(prefix.upper())
    await client.close()


async def stream_messages(client: NATS, stream: str) -> list[Any]:
    js = client.jetstream()
    info = await js.stream_info(stream)
    return [await js.get_msg(stream, seq) for seq in range(1, info.state.last_seq + 1)]


async def outbox_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


def elsewhere(*relays: OutboxRelay) -> None:
    """As if `relays` (started) ran in other processes: a commit here reaches them through
    NOTIFY (or their poll) only, not by waking them directly."""
    for relay in relays:
        outbox_module._local_relays[relay.channel].discard(relay)


async def start_settled(*relays: OutboxRelay) -> None:
    """Start `relays` in order and return once each has run the batch every relay publishes as it
    starts (what was left before it ran): a commit made after that reaches a relay only by NOTIFY,
    its process's wake-up or its poll. (Made before, a late start-up batch on a loaded machine
    found it: CI saw a follower publish rows the test meant for the leader.)"""
    for relay in relays:
        settled = asyncio.Event()
        first_batch = relay.publish_batch

        async def noted(*, wait: bool = False, first_batch: Any = first_batch, settled: asyncio.Event = settled) -> int:
            try:
                return int(await first_batch(wait=wait))
            finally:
                settled.set()

        relay.publish_batch = noted  # type: ignore[method-assign]
        await relay.start()
        async with asyncio.timeout(5):
            await settled.wait()
        relay.publish_batch = first_batch  # type: ignore[method-assign]


async def test_rolled_back_transaction_publishes_nothing(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    _, prefix = nc
    outbox = Outbox(table, f"svc-{prefix}")
    sessions = create_sessionmaker(engine)
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await outbox.enqueue(session, f"{prefix}.thing", {"n": 1})
            raise RuntimeError("business rule failed")
    assert await outbox_count(engine) == 0


async def test_relay_publishes_in_order_with_message_ids(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    ids = []
    async with unit_of_work(sessions) as session:
        for n in range(5):
            ids.append(await outbox.enqueue(session, f"{prefix}.thing", {"n": n}))
    relay = OutboxRelay(engine, client, table, service, poll_interval=5)
    await relay.start()
    try:
        async with asyncio.timeout(5):
            while await outbox_count(engine):
                await asyncio.sleep(0.05)
        # A later commit wakes the relay through NOTIFY (the poll interval is 5 s).
        async with unit_of_work(sessions) as session:
            ids.append(await outbox.enqueue(session, f"{prefix}.thing", {"n": 5}))
        async with asyncio.timeout(2):
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
    finally:
        await relay.stop()
    messages = await stream_messages(client, prefix.upper())
    assert [json.loads(m.data)["n"] for m in messages] == [0, 1, 2, 3, 4, 5]
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(i) for i in ids]


async def test_hints_go_out_on_core_nats_in_order_with_the_stored_events(
    engine: AsyncEngine, nc: tuple[NATS, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hint subject (contracts.HINT_SUBJECTS) is in no stream: a JetStream publish of it would
    find no stream and fail the batch; the relay publishes it on core NATS instead, in commit order
    with the stored events around it, and the stored events keep their message ids."""
    client, prefix = nc
    hint = f"{prefix}-hints.wake"  # outside the test stream's subjects
    monkeypatch.setattr(outbox_module, "HINT_SUBJECTS", frozenset({hint}))
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    heard: list[tuple[str, int]] = []

    async def hear(message: Any) -> None:  # one subscription: the order heard is the order sent
        if message.subject.startswith(prefix):
            heard.append((message.subject, json.loads(message.data)["n"]))

    listener = await client.subscribe(">", cb=hear)
    subjects = [f"{prefix}.thing", hint, hint, f"{prefix}.thing", hint]
    async with unit_of_work(create_sessionmaker(engine)) as session:
        for n, subject in enumerate(subjects):
            await outbox.enqueue(session, subject, {"n": n})
    relay = OutboxRelay(engine, client, table, service, poll_interval=5)
    await relay.start()
    try:
        async with asyncio.timeout(5):
            while await outbox_count(engine) or len(heard) < len(subjects):
                await asyncio.sleep(0.02)
    finally:
        await relay.stop()
        await listener.unsubscribe()
    assert heard == [(subject, n) for n, subject in enumerate(subjects)]
    stored = await stream_messages(client, prefix.upper())
    assert [json.loads(m.data)["n"] for m in stored] == [0, 3]
    assert all(m.headers["Nats-Msg-Id"] for m in stored)
    assert relay.healthy


async def test_republishing_is_deduplicated(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    """A crash between publish and delete republishes the same rows: JetStream drops them."""
    client, prefix = nc
    service = f"svc-{prefix}"
    sessions = create_sessionmaker(engine)
    async with unit_of_work(sessions) as session:
        await Outbox(table, service).enqueue(session, f"{prefix}.thing", {"n": 1})
    async with engine.connect() as conn:
        row = (await conn.execute(select(table))).one()
    relay = OutboxRelay(engine, client, table, service)
    assert await relay.publish_batch() == 1
    async with engine.begin() as conn:  # put the row back, as if the delete had been lost
        await conn.execute(
            table.insert().values(msg_id=row.msg_id, subject=row.subject, payload=row.payload, headers=row.headers)
        )
    assert await relay.publish_batch() == 1
    assert len(await stream_messages(client, prefix.upper())) == 1


async def test_only_one_relay_publishes_at_a_time(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    client, prefix = nc
    service = f"svc-{prefix}"
    sessions = create_sessionmaker(engine)
    async with unit_of_work(sessions) as session:
        await Outbox(table, service).enqueue(session, f"{prefix}.thing", {"n": 1})
    relay = OutboxRelay(engine, client, table, service)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": relay._lock_key})
        assert await relay.publish_batch() == 0  # the other replica holds the lock
    assert await relay.publish_batch() == 1


async def test_nats_outage_delays_but_loses_nothing(
    engine: AsyncEngine, nats_server: Any, nats_settings: NatsSettings
) -> None:
    client = await nats_helpers.connect(nats_settings, "outage-test")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    stream = prefix.upper()
    await nats_helpers.ensure_stream(client, nats_helpers.StreamSpec(stream, [f"{prefix}.>"]))
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    relay = OutboxRelay(engine, client, table, service, poll_interval=0.2)
    await relay.start()
    try:
        nats_server.stop()
        async with unit_of_work(sessions) as session:
            for n in range(3):
                await outbox.enqueue(session, f"{prefix}.thing", {"n": n})
        await asyncio.sleep(1.0)
        assert await outbox_count(engine) == 3  # nothing published, nothing lost
        nats_server.start()
        async with asyncio.timeout(30):
            while await outbox_count(engine):
                await asyncio.sleep(0.1)
        messages = await stream_messages(client, stream)
        assert [json.loads(m.data)["n"] for m in messages] == [0, 1, 2]
    finally:
        await relay.stop()
        await client.jetstream().delete_stream(stream)
        await client.close()


async def test_a_row_committed_during_a_batch_is_not_lost(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    """Ids are taken at insert, rows become visible at commit: a lower id can commit after the
    relay's SELECT. It must be published by the next batch, never deleted unpublished."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    late = sessions()
    await late.begin()
    await outbox.enqueue(late, f"{prefix}.thing", {"n": "late"})  # lower id, not committed yet
    async with unit_of_work(sessions) as session:
        await outbox.enqueue(session, f"{prefix}.thing", {"n": "early"})

    class CommitLateDuringPublish:
        """The relay's JetStream context, committing the late transaction mid-batch."""

        def __init__(self, js: Any) -> None:
            self.js = js

        async def publish_async(self, *args: Any, **kwargs: Any) -> Any:
            if late.in_transaction():
                await late.commit()
            return await self.js.publish_async(*args, **kwargs)

    relay = OutboxRelay(engine, client, table, service)
    relay._js = CommitLateDuringPublish(client.jetstream())  # the relay's one JetStream context
    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 1  # the late row is still there, and now published
    await late.close()
    assert sorted(json.loads(m.data)["n"] for m in await stream_messages(client, prefix.upper())) == ["early", "late"]


async def test_enqueue_many_writes_in_order_in_one_transaction(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    """Many messages in one INSERT (the pipelines' realtime changes), in the given order, each with
    its own message id and the request id; an empty batch writes nothing."""
    _, prefix = nc
    outbox = Outbox(table, f"svc-{prefix}")
    sessions = create_sessionmaker(engine)
    token = request_id_var.set("req-1")
    try:
        async with unit_of_work(sessions) as session:
            assert await outbox.enqueue_many(session, []) == []
            ids = await outbox.enqueue_many(
                session,
                [
                    OutboxMessage(f"{prefix}.a", {"n": 0}),
                    OutboxMessage(f"{prefix}.b", '{"n":1}', headers={"X-Other": "x"}),
                    OutboxMessage(f"{prefix}.a", {"n": 2}, msg_id=uuid.UUID(int=7)),
                ],
            )
    finally:
        request_id_var.reset(token)
    assert len(set(ids)) == 3 and ids[2] == uuid.UUID(int=7)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(table.c.msg_id, table.c.subject, table.c.payload, table.c.headers).order_by(table.c.id)
            )
        ).all()
    assert [(r.msg_id, r.subject, json.loads(r.payload)["n"]) for r in rows] == [
        (ids[0], f"{prefix}.a", 0),
        (ids[1], f"{prefix}.b", 1),
        (ids[2], f"{prefix}.a", 2),
    ]
    assert [r.headers for r in rows] == [
        {"X-Request-Id": "req-1"},
        {"X-Other": "x", "X-Request-Id": "req-1"},
        {"X-Request-Id": "req-1"},
    ]
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await outbox.enqueue_many(session, [OutboxMessage(f"{prefix}.a", {"n": 3})])
            raise RuntimeError("rolled back with the caller's transaction")
    assert await outbox_count(engine) == 3


async def test_publishing_many_batches_does_not_grow_subscriptions(
    engine: AsyncEngine, nc: tuple[NATS, str], nats_server: Any
) -> None:
    """Each JetStream context subscribes to its own reply inbox on first publish_async and never
    unsubscribes: a context per batch leaked a subscription per batch in nats-server (make soak)."""
    client, prefix = nc
    service = f"svc-{prefix}"
    sessions = create_sessionmaker(engine)
    relay = OutboxRelay(engine, client, table, service)

    async def publish_one(n: int) -> None:
        async with unit_of_work(sessions) as session:
            await Outbox(table, service).enqueue(session, f"{prefix}.thing", {"n": n})
        assert await relay.publish_batch() == 1

    async def server_subscriptions() -> int:
        async with httpx.AsyncClient() as http:
            connz = (await http.get(f"{nats_server.monitor_url}/connz", params={"subs": "1"})).json()
        (conn,) = [c for c in connz["connections"] if c.get("name") == "outbox-test"]
        return int(conn["subscriptions"])

    await publish_one(0)
    await client.flush()
    before = await server_subscriptions()
    for n in range(1, 21):
        await publish_one(n)
    await client.flush()
    assert await server_subscriptions() == before
    assert len(await stream_messages(client, prefix.upper())) == 21


async def test_one_relay_per_service_answers_commits_and_another_takes_over(
    engine: AsyncEngine, nc: tuple[NATS, str]
) -> None:
    """Every process of a service runs a relay and hears every NOTIFY: only the leader answers
    (one relay transaction per commit, not one per process); when it stops, another leads.
    The commits come from a process without a relay of its own."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    first = OutboxRelay(engine, client, table, service, poll_interval=30)
    second = OutboxRelay(engine, client, table, service, poll_interval=30)
    await start_settled(first, second)
    elsewhere(first, second)
    try:
        assert (first.leader, second.leader) == (True, False)
        for n in range(5):
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": n})
        async with asyncio.timeout(5):
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
        assert (first.published_total, second.published_total) == (5, 0)  # the follower only polls

        await first.stop()  # its connection, and with it the lead, ends
        second.poll_interval = 0.1
        second.wake()  # its next poll
        async with asyncio.timeout(5):
            while not second.leader:
                await asyncio.sleep(0.02)
        second.poll_interval = 30  # from now on a commit reaches it through NOTIFY only
        await asyncio.sleep(0.2)  # past the poll it was waiting for
        async with unit_of_work(sessions) as session:
            await outbox.enqueue(session, f"{prefix}.thing", {"n": 5})
        async with asyncio.timeout(5):
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
        assert second.published_total == 1
    finally:
        await first.stop()
        await second.stop()
    messages = await stream_messages(client, prefix.upper())
    assert [json.loads(m.data)["n"] for m in messages] == [0, 1, 2, 3, 4, 5]


async def test_batches_of_every_size_share_one_prepared_delete(
    engine: AsyncEngine, nc: tuple[NATS, str], fresh_database: str
) -> None:
    """A pooled backend keeps every statement prepared on it: an IN list of the published ids
    was a new DELETE (and plan) for every new batch size, so a backend grew whenever a new size
    came up (`make soak`). One connection (a fixed pool of one), batches of 1 to 6 rows."""
    client, prefix = nc
    service = f"svc-{prefix}"
    single = create_engine(fresh_database, pool_size=1, fixed=True)
    try:
        sessions = create_sessionmaker(single)
        relay = OutboxRelay(single, client, table, service)
        for size in range(1, 7):
            async with unit_of_work(sessions) as session:
                await Outbox(table, service).enqueue_many(
                    session, [OutboxMessage(f"{prefix}.thing", {"n": n}) for n in range(size)]
                )
            assert await relay.publish_batch() == size
        async with single.connect() as conn:
            deletes = await conn.scalar(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'DELETE FROM outbox%'")
            )
        assert deletes == 1
    finally:
        await single.dispose()


async def test_a_commit_is_published_by_the_relay_of_its_own_process(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    """A commit wakes the relay of the process that made it, right away, even when that relay
    is not the leader (no NOTIFY round trip to another process, no waiting for a poll); the
    leader leaves such commits to it (one relay transaction per commit)."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    leader = OutboxRelay(engine, client, table, service, poll_interval=30)
    local = OutboxRelay(engine, client, table, service, poll_interval=30)
    await start_settled(leader, local)
    elsewhere(leader)  # the leader runs in another process
    try:
        assert (leader.leader, local.leader) == (True, False)
        for n in range(3):
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": n})
        async with asyncio.timeout(5):  # far below the 30 s poll
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
        assert (leader.published_total, local.published_total) == (0, 3)
        with pytest.raises(RuntimeError):  # a rolled-back write wakes nothing and publishes nothing
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": "rolled back"})
                raise RuntimeError("business rule failed")
    finally:
        await leader.stop()
        await local.stop()
    messages = await stream_messages(client, prefix.upper())
    assert [json.loads(m.data)["n"] for m in messages] == [0, 1, 2]


async def test_a_woken_relay_finding_the_lock_taken_tries_again(engine: AsyncEngine, nc: tuple[NATS, str]) -> None:
    """Another relay's batch may have read the outbox before the commit that woke this relay:
    finding the lock taken, the woken relay tries again once it is free, instead of leaving
    the rows to the next poll."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    relay = OutboxRelay(engine, client, table, service, poll_interval=30)
    await relay.start()
    try:
        async with engine.connect() as other:  # another relay's batch, holding the lock
            held = await other.begin()
            await other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": relay._lock_key})
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": 1})
            async with asyncio.timeout(5):
                while not relay.contended:
                    await asyncio.sleep(0.01)
            assert await outbox_count(engine) == 1
            await held.commit()  # that batch ends
        async with asyncio.timeout(5):  # far below the 30 s poll
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
        assert relay.published_total == 1
    finally:
        await relay.stop()


async def test_a_follower_woken_by_its_own_commits_tries_to_lead_once_per_poll_interval(
    engine: AsyncEngine, nc: tuple[NATS, str]
) -> None:
    """Taking the lead costs a round trip: a follower publishing its own process's commits tries
    it after a poll (or once per poll interval), not after every batch."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    leader = OutboxRelay(engine, client, table, service, poll_interval=30)
    local = OutboxRelay(engine, client, table, service, poll_interval=30)
    await start_settled(leader, local)
    elsewhere(leader)
    attempts = 0
    take_lead = local._lead

    async def counted() -> None:
        nonlocal attempts
        attempts += 1
        await take_lead()

    local._lead = counted  # type: ignore[method-assign]
    try:
        for n in range(5):
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": n})
            async with asyncio.timeout(5):
                while await outbox_count(engine):
                    await asyncio.sleep(0.02)
        assert local.published_total == 5 and not local.leader
        assert attempts <= 1  # its first loop only
    finally:
        await leader.stop()
        await local.stop()


async def test_a_relay_that_does_not_wake_on_commit_leaves_its_commits_to_the_leader(
    engine: AsyncEngine, nc: tuple[NATS, str]
) -> None:
    """A busy process (the pipelines worker) opts out of being woken by its own commits: they
    reach the leader through NOTIFY (where many fold into one batch), not a batch each."""
    client, prefix = nc
    service = f"svc-{prefix}"
    outbox = Outbox(table, service)
    sessions = create_sessionmaker(engine)
    leader = OutboxRelay(engine, client, table, service, poll_interval=30)
    worker = OutboxRelay(engine, client, table, service, poll_interval=30, wake_on_commit=False)
    await start_settled(leader, worker)
    elsewhere(leader)  # the leader runs in another process; this one is the worker's
    try:
        for n in range(3):
            async with unit_of_work(sessions) as session:
                await outbox.enqueue(session, f"{prefix}.thing", {"n": n})
        async with asyncio.timeout(5):  # far below the 30 s poll
            while await outbox_count(engine):
                await asyncio.sleep(0.02)
        assert (leader.published_total, worker.published_total) == (3, 0)
    finally:
        await leader.stop()
        await worker.stop()
    assert [json.loads(m.data)["n"] for m in await stream_messages(client, prefix.upper())] == [0, 1, 2]
