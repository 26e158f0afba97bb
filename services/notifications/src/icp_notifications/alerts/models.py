"""`alert_rules` (one document per organisation) and `alert_deliveries` (one row per event and
target: the idempotency key, attempts and outcome)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Integer, String, Text, UniqueConstraint, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base


class AlertRules(Base):
    __tablename__ = "alert_rules"

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AlertDelivery(Base):
    """`status`: retrying | sent | dead | skipped (SMTP not configured); all but retrying are final:
    a redelivered event skips the target."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "target", name="uq_alert_deliveries_event_target"),
        CheckConstraint("status IN ('retrying', 'sent', 'dead', 'skipped')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    target: Mapped[str] = mapped_column(String, nullable=False)  # "email:<address>" | "webhook:<url>"
    kind: Mapped[str] = mapped_column(String, nullable=False)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False, server_default="retrying")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
