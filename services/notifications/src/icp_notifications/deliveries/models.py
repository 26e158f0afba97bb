"""The `deliveries` table: one row per handled event, keyed by the event id (idempotency).

`status`: `retrying` (an attempt failed, another will come), `sent`, `dead` (dead-lettered),
`skipped` (SMTP not configured) or `expired` (the invitation expired before it could be sent).
Every status but `retrying` is final: a redelivered event with a final row is acknowledged
without sending anything."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base


class DeliveryStatus(StrEnum):
    RETRYING = "retrying"
    SENT = "sent"
    DEAD = "dead"
    SKIPPED = "skipped"
    EXPIRED = "expired"


FINAL_STATUSES = frozenset({DeliveryStatus.SENT, DeliveryStatus.DEAD, DeliveryStatus.SKIPPED, DeliveryStatus.EXPIRED})
STATUS_CHECK = "status IN ('retrying', 'sent', 'dead', 'skipped', 'expired')"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(STATUS_CHECK, name="status"),
        Index("ix_deliveries_invitation_id", "invitation_id"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    recipient: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False, server_default=DeliveryStatus.RETRYING.value)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
