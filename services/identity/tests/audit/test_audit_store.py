"""The audit store (issue 18.3): exactly once across redeliveries, append-only (UPDATE refused by
the database), retention the only deletion, keyset pages per organisation; the durable consumer
stores what other services publish on audit.<org_id>."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from icp_common.audit import new_entry
from icp_common.errors import InvalidInput
from icp_common.identity import Identity
from icp_identity.audit import store
from icp_identity.audit.consumer import AuditConsumer


def entry(org: uuid.UUID, action: str = "jobs.create", *, at: datetime | None = None, **over: Any) -> dict[str, Any]:
    caller = Identity(state="ok", user_id=str(uuid.uuid4()), email="a@example.com", org_id=str(org), role="admin")
    made = new_entry(caller, None, action, "job", str(uuid.uuid4()))
    if at is not None:
        made["timestamp"] = at.isoformat().replace("+00:00", "Z")
    return {**made, **over}


async def count(db: Any, org: uuid.UUID) -> int:
    async with db() as s:
        return int(
            (
                await s.execute(text("SELECT count(*) FROM audit_entries WHERE organisation_id = :o"), {"o": org})
            ).scalar()
        )


async def test_an_entry_is_stored_once_and_never_updated(db) -> None:
    org = uuid.uuid4()
    one = entry(org)
    async with db() as s:
        await store.store(s, [one])
    async with db() as s:
        await store.store(s, [one])  # a redelivery
    assert await count(db, org) == 1
    with pytest.raises(DBAPIError, match="append-only"):
        async with db() as s:
            await s.execute(text("UPDATE audit_entries SET action = 'x' WHERE organisation_id = :o"), {"o": org})
    with pytest.raises(DBAPIError, match="append-only"):  # only the retention sweep deletes
        async with db() as s:
            await s.execute(text("DELETE FROM audit_entries WHERE organisation_id = :o"), {"o": org})
    assert await count(db, org) == 1


async def test_batches_of_every_size_share_one_prepared_insert(db) -> None:
    """A pooled backend keeps every statement prepared on it: a multi-row VALUES was a new INSERT
    (and plan, ~100 kB) per batch size, so the consumer's backend grew whenever a new batch size
    came up (`make soak`). Batches of 1 to 8 entries on one connection: one prepared INSERT."""
    org = uuid.uuid4()
    async with db() as s:
        for size in range(1, 9):
            await store.store(s, [entry(org) for _ in range(size)])
        inserts = (
            await s.execute(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO audit_entries%'")
            )
        ).scalar()
    assert inserts == 1
    assert await count(db, org) == 36


async def test_retention_deletes_only_old_entries(db) -> None:
    org = uuid.uuid4()
    now = datetime.now(UTC)
    async with db() as s:
        await store.store(s, [entry(org, at=now - timedelta(days=400)), entry(org, at=now - timedelta(days=10))])
        assert await store.sweep(s, 365) >= 1
    assert await count(db, org) == 1
    async with db() as s:
        await store.store(s, [entry(org, at=now - timedelta(hours=1))])
    with pytest.raises(DBAPIError, match="append-only"):  # the sweep's mark: never a fresh entry
        async with db() as s:
            await s.execute(text("SET LOCAL interloper.audit_retention = 'on'"))
            await s.execute(
                text("DELETE FROM audit_entries WHERE organisation_id = :o AND timestamp > now() - interval '1 day'"),
                {"o": org},
            )
    assert await count(db, org) == 2


async def test_pages_are_keyset_newest_first_and_per_organisation(db) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    base = datetime.now(UTC)
    made = [entry(org, f"jobs.a{n}", at=base + timedelta(seconds=n // 2)) for n in range(7)]  # equal timestamps too
    async with db() as s:
        await store.store(s, [*made, entry(other)])
    seen: list[dict[str, Any]] = []
    cursor = None
    async with db() as s:
        while True:
            items, cursor = await store.page(s, org, limit=3, cursor=cursor)
            seen += items
            if cursor is None:
                break
        assert len(seen) == 7 and {e["id"] for e in seen} == {e["id"] for e in made}
        keys = [(e["timestamp"], e["id"]) for e in seen]
        assert keys == sorted(keys, reverse=True)
        only, _ = await store.page(s, org, limit=100, action="jobs.a3")
        assert [e["action"] for e in only] == ["jobs.a3"]
        with pytest.raises(InvalidInput):
            await store.page(s, org, limit=10, cursor="not-a-cursor")


async def test_the_consumer_stores_published_entries_once(db, sessions, nats_client) -> None:
    org = uuid.uuid4()
    one = entry(org)
    consumer = AuditConsumer(nats_client, sessions, 365)
    await consumer.start()
    try:
        js = nats_client.jetstream()
        for _ in range(2):  # published twice (a relay retry after its ack was lost)
            await js.publish(f"audit.{org}", json.dumps(one).encode())
        await js.publish(f"audit.{org}", b"not json")  # dropped, not redelivered forever
        later = entry(org, "jobs.update")
        await js.publish(f"audit.{org}", json.dumps(later).encode())
        for _ in range(300):
            if await count(db, org) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    async with db() as s:
        items, _ = await store.page(s, org, limit=10)
    assert sorted(e["action"] for e in items) == ["jobs.create", "jobs.update"]
