"""The `runs` and `events` tables and the `asset_executions` view.

Runs carry the worker's bookkeeping (`dispatched_at`, `heartbeat_at`, `worker_id`, `attempts`):
a worker claims the oldest queued run with `FOR UPDATE SKIP LOCKED` (partial index
`ix_runs_queued`), heartbeats while it executes, and a reaper fails runs whose heartbeat is stale
(`ix_runs_inflight`). None of these columns is part of the public API."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base
from .status import STARTED, RunStatus


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in RunStatus) + ")", name="status"),
        Index("ix_runs_org_id_created_at", "org_id", "created_at"),
        Index("ix_runs_job_id", "job_id"),
        Index("ix_runs_backfill_id_status", "backfill_id", "status"),
        Index("ix_runs_queued", "created_at", postgresql_where=text(f"status = '{RunStatus.QUEUED}'")),
        Index(
            "ix_runs_inflight",
            "heartbeat_at",
            postgresql_where=text("status IN (" + ", ".join(f"'{s}'" for s in STARTED) + ")"),
        ),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    backfill_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("backfills.id", ondelete="CASCADE"), nullable=True
    )
    partition_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String, nullable=False, default=RunStatus.QUEUED.value)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
    # Worker bookkeeping (issue 5): not exposed by the API.
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_run_id_timestamp", "run_id", "timestamp", "seq"),
        Index("ix_events_asset_lookup", "run_id", "asset_key", "event_type", "timestamp"),
        Index("ix_events_org_id", "org_id"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=True)
    backfill_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("backfills.id", ondelete="CASCADE"), nullable=True
    )
    event_type: Mapped[str] = mapped_column(String, nullable=False)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    asset_key: Mapped[str | None] = mapped_column(String, nullable=True)
    partition_or_window: Mapped[str | None] = mapped_column(String, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    level: Mapped[str | None] = mapped_column(String, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), nullable=False)


class RunLog(Base):
    """A line of a run's output (issue 19): its stdout, stderr, Python `logging`, and the
    worker's own final line (`system`). Deleted with its run; `seq` orders the lines."""

    __tablename__ = "run_logs"
    __table_args__ = (Index("ix_run_logs_run_id_seq", "run_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    stream: Mapped[str] = mapped_column(String, nullable=False)
    asset: Mapped[str | None] = mapped_column(String, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)


# The view of spec 4.4 (created by migration 0002); a Table on a separate MetaData so that
# metadata.create_all / autogenerate never treat it as a table.
view_metadata = MetaData()
asset_executions = Table(
    "asset_executions",
    view_metadata,
    Column("run_id", Uuid),
    Column("org_id", Uuid),
    Column("asset_id", Uuid),
    Column("asset_key", String),
    Column("status", String),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True)),
)
