"""Rows of the `events` table (spec 6.2): from interloper-core events reported by a run's child
process, and the few events the control plane writes itself (launch failures, lost runs,
cancellation). `org_id`, `run_id` and `backfill_id` always come from the run, never from the event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypedDict

from .protocol import MAX_TEXT, EventMessage, truncate


class EventRow(TypedDict):
    """The values of one `events` row: every column, always (one multi-row INSERT needs the same
    keys in every row). `id` is chosen here, not by the database, so that storing the same event
    again (a retry after a commit whose outcome was unknown) is a no-op."""

    id: uuid.UUID
    org_id: uuid.UUID
    run_id: uuid.UUID
    backfill_id: uuid.UUID | None
    event_type: str
    asset_id: uuid.UUID | None
    asset_key: str | None
    partition_or_window: str | None
    error: str | None
    traceback: str | None
    message: str | None
    level: str | None
    timestamp: datetime


@dataclass(frozen=True)
class RunRef:
    """What the lifecycle needs to know about a run (its identity never changes)."""

    id: uuid.UUID
    org_id: uuid.UUID
    backfill_id: uuid.UUID | None
    partition_date: date | None = None
    job_id: uuid.UUID | None = None

    @classmethod
    def of(cls, run: Any) -> RunRef:
        return cls(run.id, run.org_id, run.backfill_id, run.partition_date, run.job_id)

    @property
    def partition(self) -> str | None:
        return self.partition_date.isoformat() if self.partition_date else None


def clean_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A string PostgreSQL accepts (no NUL), bounded."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return truncate(text.replace("\x00", "\ufffd"), limit)


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def row(
    run: RunRef,
    event_type: str,
    *,
    timestamp: datetime | None = None,
    asset_id: uuid.UUID | None = None,
    asset_key: str | None = None,
    partition_or_window: str | None = None,
    error: str | None = None,
    traceback: str | None = None,
    message: str | None = None,
    level: str | None = None,
) -> EventRow:
    return {
        "id": uuid.uuid4(),
        "org_id": run.org_id,
        "run_id": run.id,
        "backfill_id": run.backfill_id,
        "event_type": event_type,
        "asset_id": asset_id,
        "asset_key": clean_text(asset_key, 1024),
        "partition_or_window": clean_text(partition_or_window, 1024),
        "error": clean_text(error),
        "traceback": clean_text(traceback),
        "message": clean_text(message),
        "level": clean_text(level, 32),
        "timestamp": timestamp or datetime.now(UTC),
    }


def from_child(run: RunRef, message: EventMessage) -> EventRow:
    """The row of an event reported by a run process (its time, else now)."""
    event_type, stamp, meta = message["type"], message["ts"], message["meta"]
    try:
        timestamp = datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.now(UTC)
    except ValueError:
        timestamp = datetime.now(UTC)
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return row(
        run,
        event_type,
        timestamp=timestamp,
        asset_id=_uuid(meta.get("asset_id")),
        asset_key=_str(meta.get("asset_key")),
        partition_or_window=_str(meta.get("partition_or_window")),
        error=_str(meta.get("error")),
        traceback=_str(meta.get("traceback")),
        message=_str(meta.get("message")),
        level=_str(meta.get("level")),
    )


def run_failed(run: RunRef, error: str) -> EventRow:
    """The run failed before or outside the DAG (launch error, lost worker, dead child)."""
    return row(run, "run_failed", partition_or_window=run.partition, error=error, message=f"Run failed: {error}")


def asset_canceled(run: RunRef, asset: Any, reason: str) -> EventRow:
    return row(
        run,
        "asset_canceled",
        asset_id=asset.asset_id,
        asset_key=asset.asset_key,
        partition_or_window=run.partition,
        message=f"Asset '{asset.asset_key}' canceled ({reason})",
    )


def run_canceled(run: RunRef, reason: str) -> EventRow:
    """The core has no run_canceled type: a warning `log` event says who or what canceled it."""
    return row(run, "log", partition_or_window=run.partition, message=f"Run canceled ({reason})", level="WARNING")
