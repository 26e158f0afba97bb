"""Job request/response models (spec 2.2, 2.10)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from ..backfills.service import MAX_CONCURRENCY, MAX_PARTITIONS
from ..formats import DbTime


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


class JobWrite(BaseModel):
    """POST and PUT body; PUT is a full replacement (spec 2.10): omitted `source_ids`,
    `asset_ids` and `tags` become empty, the flags their defaults, `backfill_days` null."""

    name: str
    cron: str
    source_ids: list[uuid.UUID] | None = None
    asset_ids: list[uuid.UUID] | None = None
    tags: list[str] | None = None
    enabled: bool = True
    partitioned: bool = False
    backfill_days: Annotated[Annotated[int, Field(ge=1, le=MAX_PARTITIONS)] | None, BeforeValidator(_blank_to_none)] = (
        None
    )


class JobRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    cron: str
    tags: list[str]
    enabled: bool
    partitioned: bool
    backfill_days: int | None
    source_ids: list[uuid.UUID]
    asset_ids: list[uuid.UUID]
    last_run_at: DbTime
    next_run_at: DbTime
    created_at: DbTime


class RunRequest(BaseModel):
    partition_date: date | None = None


class RunQueued(BaseModel):
    status: Literal["queued"] = "queued"
    run_id: uuid.UUID


class BackfillRequest(BaseModel):
    start_date: date
    end_date: date
    concurrency: Annotated[int, Field(le=MAX_CONCURRENCY)] = 1
    fail_fast: bool = False


class BackfillQueued(BaseModel):
    status: Literal["queued"] = "queued"
    backfill_id: uuid.UUID
