"""Queries on `resources` (every function takes org_id; flush, never commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Resource


async def get(session: AsyncSession, org_id: uuid.UUID, resource_id: uuid.UUID) -> Resource | None:
    stmt = select(Resource).where(Resource.org_id == org_id, Resource.id == resource_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_many(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Resource]:
    wanted = set(ids)
    if not wanted:
        return {}
    stmt = select(Resource).where(Resource.org_id == org_id, Resource.id.in_(wanted))
    return {r.id: r for r in (await session.execute(stmt)).scalars()}


async def list_for_org(session: AsyncSession, org_id: uuid.UUID, kind: str | None = None) -> list[Resource]:
    stmt = select(Resource).where(Resource.org_id == org_id)
    if kind is not None:
        stmt = stmt.where(Resource.kind == kind)
    return list((await session.execute(stmt.order_by(Resource.created_at, Resource.id))).scalars())


async def add(session: AsyncSession, resource: Resource) -> Resource:
    session.add(resource)
    await session.flush()
    return resource


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def delete_one(session: AsyncSession, org_id: uuid.UUID, resource_id: uuid.UUID) -> bool:
    stmt = delete(Resource).where(Resource.org_id == org_id, Resource.id == resource_id).returning(Resource.id)
    return (await session.execute(stmt)).first() is not None
