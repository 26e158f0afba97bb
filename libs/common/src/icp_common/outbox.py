"""Transactional outbox: events are written in the caller's transaction and published to
JetStream afterwards by a relay, with the row's message id for de-duplication (hints, which no
stream stores, on core NATS: `contracts.HINT_SUBJECTS`).

State change and event commit or roll back together; a NATS outage only delays delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    MetaData,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from .context import current_request_id
from .contracts import HINT_SUBJECTS
from .telemetry import inject as inject_trace_context

log = logging.getLogger(__name__)

OUTBOX_TABLE = "outbox"


def define_outbox(metadata: MetaData) -> Table:
    """The outbox table; each service's metadata (and first migration) includes it."""
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("msg_id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
        Column("subject", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("headers", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def notify_channel(service: str) -> str:
    return f"outbox_{service.replace('-', '_')}"


# The relays running in this process, by NOTIFY channel. A commit that wrote outbox rows wakes
# them itself (`_wake_local_relays`): the rows are published by the process that wrote them,
# right after its commit, without a NOTIFY round trip to another process's (busy) event loop.
_local_relays: dict[str, set[OutboxRelay]] = defaultdict(set)
_PENDING = "icp_outbox_pending"  # Session.info key: channels this transaction wrote rows for
# NOTIFY payload of a commit whose own process has a relay: the leader leaves it to that relay
# (one relay transaction per commit, not two); the poll still recovers it if that process died.
LOCAL_RELAY = "local"


@event.listens_for(Session, "after_commit")
def _wake_local_relays(session: Session) -> None:
    """After a commit (never a rollback) that wrote outbox rows: wake this process's relays."""
    for channel in session.info.pop(_PENDING, ()):
        for relay in _local_relays.get(channel, ()):
            relay.wake()


@dataclass(frozen=True)
class OutboxMessage:
    """One message to publish: a JSON payload (a mapping, or already encoded) on a subject."""

    subject: str
    payload: Mapping[str, Any] | str
    headers: Mapping[str, str] | None = None
    msg_id: uuid.UUID | None = None


class Outbox:
    """Writes events into the outbox of one service (inside the caller's transaction)."""

    def __init__(self, table: Table, service: str) -> None:
        self.table = table
        self.channel = notify_channel(service)
        # Arrays in, rows out in array order (WITH ORDINALITY: ids follow the given order).
        self._enqueue = text(
            f"WITH enqueued AS (INSERT INTO {table.name} (msg_id, subject, payload, headers)"
            " SELECT m, s, p, h::jsonb FROM unnest(CAST(:msg_ids AS uuid[]), CAST(:subjects AS text[]),"
            " CAST(:payloads AS text[]), CAST(:headers AS text[])) WITH ORDINALITY AS u(m, s, p, h, n)"
            " ORDER BY n) SELECT pg_notify(:channel, :notice)"
        )

    async def enqueue(
        self,
        session: AsyncSession,
        subject: str,
        payload: Mapping[str, Any] | str,
        headers: Mapping[str, str] | None = None,
        msg_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        return (await self.enqueue_many(session, [OutboxMessage(subject, payload, headers, msg_id)]))[0]

    async def enqueue_many(self, session: AsyncSession, messages: Sequence[OutboxMessage]) -> list[uuid.UUID]:
        """Write `messages` in order (one INSERT whatever their number); returns their message ids."""
        if not messages:
            return []
        request_id = current_request_id()
        rows: list[dict[str, Any]] = []
        for message in messages:
            payload = message.payload
            body = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), default=str)
            headers = dict(message.headers or {})
            if request_id:
                headers.setdefault("X-Request-Id", request_id)
            if "traceparent" not in headers:
                inject_trace_context(headers)  # the relay publishes it as a NATS header (when tracing)
            rows.append(
                {
                    "msg_id": message.msg_id or uuid.uuid4(),
                    "subject": message.subject,
                    "payload": body,
                    "headers": headers or None,
                }
            )
        # One statement (one round trip, one prepared plan whatever the number of rows): the rows,
        # in order, and the relay's wake-up, delivered at commit only (and folded into one per
        # transaction by PostgreSQL). With a relay in this process, the commit wakes it directly.
        local = bool(_local_relays.get(self.channel))
        if local:
            session.info.setdefault(_PENDING, set()).add(self.channel)
        await session.execute(
            self._enqueue,
            {
                "channel": self.channel,
                "notice": LOCAL_RELAY if local else "",
                "msg_ids": [row["msg_id"] for row in rows],
                "subjects": [row["subject"] for row in rows],
                "payloads": [row["payload"] for row in rows],
                "headers": [json.dumps(row["headers"]) if row["headers"] else None for row in rows],
            },
        )
        return [row["msg_id"] for row in rows]


class OutboxRelay:
    """Publishes outbox rows in id order. One relay per service publishes at a time (an
    advisory lock), so several replicas never reorder events.

    Every process of a service runs a relay. A commit in a process with a relay wakes that
    relay directly (no NOTIFY round trip, whichever process leads), unless it opted out
    (`wake_on_commit`: a busy process). Every relay hears every commit's
    NOTIFY; only one, the leader (a session lock on its listening connection, released with it),
    answers it, and only for commits made where no relay runs. The others poll every
    `poll_interval`, their safety net and how they take over from a leader that is gone: a
    commit costs one relay transaction, not one per process. A woken relay that finds the lock
    taken tries again, waiting for it: the holder may have read the outbox before the commit."""

    def __init__(
        self,
        engine: AsyncEngine,
        nc: NATS,
        table: Table,
        service: str,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        wake_on_commit: bool = True,
    ) -> None:
        self.engine = engine
        self.nc = nc
        # One JetStream context for the relay's life: a context's first publish_async subscribes
        # to its own reply inbox (_INBOX.<nuid>.*) and never unsubscribes, so a context per batch
        # leaked one subscription per batch in the client and in nats-server (found by `make soak`).
        self._js = nc.jetstream()
        self.table = table
        self.service = service
        self.channel = notify_channel(service)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # Off for a busy process whose commits are not latency-critical (the pipelines worker):
        # they reach the leader through NOTIFY, where many commits fold into one batch.
        self.wake_on_commit = wake_on_commit
        self._lock_key = zlib.crc32(f"outbox:{service}".encode())
        self._leader_key = zlib.crc32(f"outbox-leader:{service}".encode())
        self.leader = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.published_total = 0
        self.healthy = True
        self.contended = False  # the last batch found the lock taken by another relay
        self._select = self._batch_query(table, "SELECT pg_try_advisory_xact_lock(:key) AS locked")
        self._select_waiting = self._batch_query(table, "SELECT true AS locked FROM pg_advisory_xact_lock(:key)")

    @staticmethod
    def _batch_query(table: Table, lock: str) -> TextualSelect:
        """The lock and the rows in one round trip: the lock is taken once (a one-row subquery),
        and its result comes back even when there are no rows (none, or another relay's turn)."""
        return text(
            f"SELECT l.locked, o.id, o.msg_id, o.subject, o.payload, o.headers FROM ({lock}) AS l"
            f" LEFT JOIN LATERAL (SELECT id, msg_id, subject, payload, headers FROM {table.name}"
            " WHERE l.locked ORDER BY id LIMIT :limit) AS o ON true"
        ).columns(
            locked=Boolean,
            id=table.c.id.type,
            msg_id=table.c.msg_id.type,
            subject=Text,
            payload=Text,
            headers=table.c.headers.type,
        )

    async def start(self) -> None:
        await self._listen()
        if self.wake_on_commit:
            _local_relays[self.channel].add(self)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        _local_relays[self.channel].discard(self)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            await self._listener.close()

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        url = self.engine.url.set(drivername="postgresql")
        try:
            self._listener = await asyncpg.connect(
                url.render_as_string(hide_password=False),
                server_settings={"application_name": "outbox-relay"},
            )
            self.leader = False
            await self._listener.add_listener(self.channel, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:  # polling still delivers
            log.warning("outbox relay cannot LISTEN (%s); falling back to polling", exc)
            self._listener = None
            return
        await self._lead()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self.leader and payload != LOCAL_RELAY:  # else the committing process's relay has it
            self._wake.set()

    async def _lead(self) -> None:
        """Become the relay that answers NOTIFY unless another process of the service is."""
        if self._listener is None or self._listener.is_closed():
            self.leader = False  # the session lock ended with its connection
            return
        if self.leader:
            return
        try:
            self.leader = bool(await self._listener.fetchval("SELECT pg_try_advisory_lock($1)", self._leader_key))
        except (OSError, asyncpg.PostgresError) as exc:
            log.debug("outbox relay cannot take the lead (%s); polling", exc)
            return
        if self.leader:
            self._wake.set()  # a commit heard just before taking the lead is published now

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff, next_lead = 0.2, 0.0
        woken = True
        while True:
            self._wake.clear()
            try:
                # Woken, and another relay's batch held the lock: wait for it this time.
                count = await self.publish_batch(wait=woken and self.contended)
                if not self.healthy:
                    log.info("outbox relay of %s recovered", self.service)
                self.healthy, backoff = True, 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning("outbox relay of %s cannot publish (%s); will retry", self.service, exc)
                self.healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                continue
            if count >= self.batch_size:
                continue
            if self.contended and woken:
                continue  # that batch may have read the outbox before the commit that woke us
            if self._listener is not None and self._listener.is_closed():
                await self._listen()  # the connection was lost, and the lead with it
            elif not self.leader and (not woken or loop.time() >= next_lead):
                # After a poll, or once per poll interval: a follower woken by its own process's
                # commits does not pay a round trip per batch for it.
                next_lead = loop.time() + self.poll_interval
                await self._lead()
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                woken = True

    async def publish_batch(self, *, wait: bool = False) -> int:
        """Publish up to one batch; returns how many rows were published. Without `wait`, none
        when another relay holds the lock (`contended`); with it, after that relay's batch (a
        lock wait in PostgreSQL: no polling)."""
        js = self._js
        t = self.table
        async with self.engine.begin() as conn:
            query = self._select_waiting if wait else self._select
            rows = (await conn.execute(query, {"key": self._lock_key, "limit": self.batch_size})).all()
            self.contended = not rows[0].locked
            if rows[0].id is None:  # no rows, or another relay's turn
                return 0
            # Publish concurrently but keep order: JetStream stores in publish order on one connection.
            acks = []
            for row in rows:
                if row.subject in HINT_SUBJECTS:  # not stored: core NATS, in order on the same connection
                    await self.nc.publish(row.subject, row.payload.encode(), headers=row.headers or None)
                    continue
                ack = await js.publish_async(
                    row.subject,
                    row.payload.encode(),
                    headers={**(row.headers or {}), "Nats-Msg-Id": str(row.msg_id)},
                )
                acks.append(ack)
            await asyncio.wait_for(asyncio.gather(*acks), timeout=10)
            # Exactly the rows published: a row with a lower id whose transaction commits
            # after our SELECT is not in `rows`, and must stay for the next batch. One array
            # parameter, not an IN list: one prepared statement in the backend whatever the
            # batch size (an IN list was a new one, kept by the pooled connection, per new size).
            published = bindparam("published", [row.id for row in rows], type_=ARRAY(BigInteger))
            await conn.execute(delete(t).where(t.c.id == any_(published)))
        self.published_total += len(rows)
        return len(rows)
