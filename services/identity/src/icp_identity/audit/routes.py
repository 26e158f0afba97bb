"""`GET /api/audit`: the active organisation's audit log (admins only), newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from icp_common.caller import AdminCaller

from ..deps import SessionDep
from . import store

router = APIRouter(prefix="/api/audit", tags=["audit"])


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("")
async def list_audit(
    caller: AdminCaller,
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    actor_id: Annotated[str | None, Query(max_length=100)] = None,
    target_id: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """`{"items": [...], "next_cursor": str | null}`; pass `next_cursor` back as `cursor`."""
    items, next_cursor = await store.page(
        db,
        caller.org_id,
        limit=limit,
        cursor=cursor,
        action=action,
        actor_id=actor_id,
        target_id=target_id,
        since=_utc(since),
        until=_utc(until),
    )
    return {"items": items, "next_cursor": next_cursor}
