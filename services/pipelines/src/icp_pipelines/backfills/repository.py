"""Queries on `backfills` (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..runs.status import ACTIVE_BACKFILL
from .models import Backfill


async def get(session: AsyncSession, org_id: uuid.UUID, backfill_id: uuid.UUID) -> Backfill | None:
    stmt = select(Backfill).where(Backfill.org_id == org_id, Backfill.id == backfill_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_org(session: AsyncSession, org_id: uuid.UUID, *, active_only: bool = False) -> list[Backfill]:
    stmt = select(Backfill).where(Backfill.org_id == org_id)
    if active_only:
        stmt = stmt.where(Backfill.status.in_(ACTIVE_BACKFILL))
    return list((await session.execute(stmt.order_by(Backfill.created_at.desc(), Backfill.id.desc()))).scalars())


async def add(session: AsyncSession, backfill: Backfill) -> Backfill:
    session.add(backfill)
    await session.flush()
    return backfill
