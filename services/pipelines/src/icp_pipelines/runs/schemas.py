"""Run, event and asset-execution response models (spec 2.2)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from ..formats import DbTime


class RunRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    job_id: uuid.UUID | None
    backfill_id: uuid.UUID | None
    partition_date: date | None
    status: str
    started_at: DbTime
    completed_at: DbTime
    created_at: DbTime


class EventRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    run_id: uuid.UUID | None
    event_type: str
    asset_id: uuid.UUID | None
    asset_key: str | None
    partition_or_window: str | None
    error: str | None
    traceback: str | None
    message: str | None
    timestamp: DbTime


class AssetExecutionRead(BaseModel):
    run_id: uuid.UUID
    org_id: uuid.UUID
    asset_id: uuid.UUID
    asset_key: str | None
    status: str | None
    started_at: DbTime
    completed_at: DbTime
    created_at: DbTime
