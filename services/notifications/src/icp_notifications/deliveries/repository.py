"""Queries on `deliveries`. Flush, never commit: the message's unit of work commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Delivery, DeliveryStatus

MAX_ERROR_LENGTH = 2000


async def lock(
    session: AsyncSession,
    event_id: uuid.UUID,
    *,
    kind: str,
    recipient: str,
    invitation_id: uuid.UUID | None = None,
    org_id: uuid.UUID | None = None,
) -> Delivery:
    """The event's row, created if new, locked until the end of the transaction: a concurrent
    (re)delivery of the same event waits here and then sees the first one's outcome."""
    await session.execute(
        insert(Delivery)
        .values(event_id=event_id, kind=kind, recipient=recipient, invitation_id=invitation_id, org_id=org_id)
        .on_conflict_do_nothing(index_elements=[Delivery.event_id])
    )
    row = await session.scalar(
        select(Delivery)
        .where(Delivery.event_id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None  # inserted above or already there; rows are never deleted here
    return row


async def get(session: AsyncSession, event_id: uuid.UUID) -> Delivery | None:
    return await session.get(Delivery, event_id)


async def record(
    session: AsyncSession,
    delivery: Delivery,
    status: DeliveryStatus,
    *,
    error: str | None = None,
    sent_at: datetime | None = None,
) -> None:
    delivery.status = status.value
    delivery.updated_at = func.now()  # type: ignore[assignment]
    if error is not None:
        delivery.last_error = error[:MAX_ERROR_LENGTH]
    if sent_at is not None:
        delivery.sent_at = sent_at
    await session.flush()
