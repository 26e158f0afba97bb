"""Storing and reading audit entries. Entries are only ever inserted (ON CONFLICT DO NOTHING:
a redelivered entry is stored once) and deleted by the retention sweep; nothing updates them
(a trigger refuses UPDATE)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import InvalidInput

from .models import AuditEntry


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def row_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    org = entry.get("organisation_id")
    actor = entry.get("actor") or {}
    target = entry.get("target") or {}
    return {
        "id": uuid.UUID(str(entry["id"])),
        "organisation_id": uuid.UUID(str(org)) if org else None,
        "timestamp": _parse_time(str(entry["timestamp"])),
        "action": str(entry["action"])[:200],
        "actor_id": str(actor["id"])[:100] if actor.get("id") else None,
        "target_id": str(target["id"])[:200] if target.get("id") else None,
        "entry": dict(entry),
    }


# Arrays in, one row each: the same statement text (one prepared statement and plan in the
# backend) whatever the batch size. A multi-row VALUES was a new statement (~100 kB in the
# backend) for every new batch size, kept by the pooled connection, which grew whenever a rarer
# batch size came up (an identity backend +34 % late in `make soak`).
_STORE = text(
    "INSERT INTO audit_entries (id, organisation_id, timestamp, action, actor_id, target_id, entry)"
    " SELECT i, o, t, a, ac, ta, e::jsonb FROM unnest(CAST(:ids AS uuid[]), CAST(:orgs AS uuid[]),"
    " CAST(:times AS timestamptz[]), CAST(:actions AS text[]), CAST(:actors AS text[]),"
    " CAST(:targets AS text[]), CAST(:entries AS text[])) AS u(i, o, t, a, ac, ta, e)"
    " ON CONFLICT (id) DO NOTHING"
)


async def store(session: AsyncSession, entries: Sequence[Mapping[str, Any]]) -> None:
    """Insert entries in the caller's transaction; one already stored (same id) is skipped."""
    if entries:
        rows = [row_of(e) for e in entries]
        await session.execute(
            _STORE,
            {
                "ids": [r["id"] for r in rows],
                "orgs": [r["organisation_id"] for r in rows],
                "times": [r["timestamp"] for r in rows],
                "actions": [r["action"] for r in rows],
                "actors": [r["actor_id"] for r in rows],
                "targets": [r["target_id"] for r in rows],
                "entries": [json.dumps(r["entry"], separators=(",", ":"), default=str) for r in rows],
            },
        )


def encode_cursor(row: AuditEntry) -> str:
    return base64.urlsafe_b64encode(f"{row.timestamp.isoformat()}|{row.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, entry_id = text.partition("|")
        return _parse_time(at), uuid.UUID(entry_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("Invalid cursor") from exc


async def page(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
    action: str | None = None,
    actor_id: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The organisation's entries, newest first (timestamp, then id), after `cursor`."""
    query = select(AuditEntry).where(AuditEntry.organisation_id == org_id)
    if cursor:
        at, entry_id = decode_cursor(cursor)
        query = query.where(or_(AuditEntry.timestamp < at, and_(AuditEntry.timestamp == at, AuditEntry.id < entry_id)))
    if action:
        query = query.where(AuditEntry.action == action)
    if actor_id:
        query = query.where(AuditEntry.actor_id == actor_id)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    if since:
        query = query.where(AuditEntry.timestamp >= since)
    if until:
        query = query.where(AuditEntry.timestamp < until)
    rows = list(
        await session.scalars(query.order_by(AuditEntry.timestamp.desc(), AuditEntry.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return [row.entry for row in rows], encode_cursor(rows[-1]) if more and rows else None


async def sweep(session: AsyncSession, retention_days: int) -> int:
    """Retention: delete the entries older than `retention_days` (the only deletion)."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    # The table's DELETE trigger refuses any other deletion (migration 0008).
    await session.execute(text("SET LOCAL interloper.audit_retention = 'on'"))
    result = await session.execute(delete(AuditEntry).where(AuditEntry.timestamp < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
