"""Realtime change events of runs, backfills and events (spec 5.2), through the outbox.

Every INSERT/UPDATE of one of these tables is published in the same transaction (the run
lifecycle, job deletion): `publish_changes` writes one outbox message per row, which the relay
publishes as `{"table", "event", "record"}` on `realtime.<org_id>.<table>` (stream REALTIME, shared
with the gateway's WebSocket relay). `record` has exactly the public columns of the row, keys in
jsonb order, values formatted as PostgreSQL's `row_to_json` does. Nothing else is sent: the
workers' wake-ups are the lifecycle's explicit `commands`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.contracts import RealtimeChange as Change
from icp_common.contracts import RealtimeFrame
from icp_common.contracts import RealtimeTable as Table
from icp_common.outbox import OutboxMessage
from icp_common.streams import realtime_subject

from .db import outbox
from .formats import pg_json_value

__all__ = ["Change", "Table", "message", "messages", "publish_changes", "record"]

RECORD_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": (
        "id",
        "job_id",
        "org_id",
        "status",
        "created_at",
        "started_at",
        "backfill_id",
        "completed_at",
        "partition_date",
    ),
    "backfills": (
        "id",
        "job_id",
        "org_id",
        "status",
        "end_date",
        "fail_fast",
        "created_at",
        "partitions",
        "start_date",
        "started_at",
        "concurrency",
        "completed_at",
    ),
    "events": (
        "id",
        "error",
        "org_id",
        "run_id",
        "message",
        "asset_id",
        "asset_key",
        "timestamp",
        "traceback",
        "event_type",
        "backfill_id",
        "partition_or_window",
    ),
}


def record(table: Table, row: Any) -> dict[str, Any]:
    """The row as `row_to_json(...)::jsonb` renders it (keys by length, then bytewise)."""
    columns = sorted(RECORD_COLUMNS[table], key=lambda c: (len(c), c))
    return {column: pg_json_value(getattr(row, column)) for column in columns}


def message(table: Table, change: Change, row: Any) -> dict[str, Any]:
    """The frame (contract `RealtimeFrame`) of one changed row."""
    return RealtimeFrame(table=table, event=change, record=record(table, row)).payload()


def messages(table: Table, change: Change, rows: Sequence[Any]) -> list[OutboxMessage]:
    """One realtime message per row, on its organisation's subject."""
    return [OutboxMessage(realtime_subject(str(row.org_id), table), message(table, change, row)) for row in rows]


async def publish_changes(session: AsyncSession, table: Table, change: Change, rows: Sequence[Any]) -> None:
    """Write one realtime message per row to the outbox (one INSERT whatever the number of rows)."""
    await outbox.enqueue_many(session, messages(table, change, rows))
