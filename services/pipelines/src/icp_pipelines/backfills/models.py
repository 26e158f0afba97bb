"""The `backfills` table. Statuses: queued (reserved), running, success, failed, canceled (reserved
for a cancel operation)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base
from ..runs.status import BackfillStatus


class Backfill(Base):
    __tablename__ = "backfills"
    __table_args__ = (
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in BackfillStatus) + ")", name="status"),
        CheckConstraint("concurrency >= 1", name="concurrency"),
        CheckConstraint("end_date >= start_date", name="date_range"),
        Index("ix_backfills_org_id_created_at", "org_id", "created_at"),
        Index("ix_backfills_job_id", "job_id"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False, default=BackfillStatus.RUNNING.value)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)
    concurrency: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    fail_fast: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    partitions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
