"""Realtime change events of runs, backfills and events (spec 5.2), through the outbox.

`publish_changes` is THE way to record a change of one of these tables: call it in the same
transaction as the INSERT/UPDATE (the API, the scheduler and the worker all do), and the outbox
relay publishes `{"table", "event", "record"}` on `realtime.<org_id>.<table>` (stream REALTIME),
where the gateway's WebSocket relay picks it up. `record` has exactly the public columns of the
row, keys in jsonb order, values formatted as PostgreSQL's `row_to_json` does.

A run that becomes `queued` also gets a wake-up message on `pipelines.runs.queued` (stream
PIPELINES) for the workers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.context import current_request_id

from .db import outbox, outbox_table
from .formats import pg_json_value

Table = Literal["runs", "backfills", "events"]
Change = Literal["INSERT", "UPDATE"]

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
RUN_QUEUED_SUBJECT = "pipelines.runs.queued"


def subject(org_id: uuid.UUID | str, table: Table) -> str:
    return f"realtime.{org_id}.{table}"


def record(table: Table, row: Any) -> dict[str, Any]:
    """The row as `row_to_json(...)::jsonb` renders it (keys by length, then bytewise)."""
    columns = sorted(RECORD_COLUMNS[table], key=lambda c: (len(c), c))
    return {column: pg_json_value(getattr(row, column)) for column in columns}


def message(table: Table, change: Change, row: Any) -> dict[str, Any]:
    return {"table": table, "event": change, "record": record(table, row)}


async def publish_changes(session: AsyncSession, table: Table, change: Change, rows: Sequence[Any]) -> None:
    """Write one realtime message per row to the outbox (one INSERT whatever the number of rows)."""
    if not rows:
        return
    headers = {"X-Request-Id": rid} if (rid := current_request_id()) else None
    values: list[dict[str, Any]] = []
    for row in rows:
        payload = json.dumps(message(table, change, row), separators=(",", ":"))
        values.append(
            {"msg_id": uuid.uuid4(), "subject": subject(row.org_id, table), "payload": payload, "headers": headers}
        )
        if table == "runs" and row.status == "queued":
            wake = json.dumps({"run_id": str(row.id), "org_id": str(row.org_id)}, separators=(",", ":"))
            values.append({"msg_id": uuid.uuid4(), "subject": RUN_QUEUED_SUBJECT, "payload": wake, "headers": headers})
    await session.execute(insert(outbox_table), values)
    await session.execute(select(func.pg_notify(outbox.channel, "")))


async def publish_change(session: AsyncSession, table: Table, change: Change, row: Any) -> None:
    await publish_changes(session, table, change, [row])
