"""Backfill response model (spec 2.2)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from ..formats import DbTime


class BackfillRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    job_id: uuid.UUID | None
    status: str
    start_date: date
    end_date: date
    concurrency: int
    fail_fast: bool
    partitions: int
    started_at: DbTime
    completed_at: DbTime
    created_at: DbTime
