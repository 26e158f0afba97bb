"""Queries on `sources`, `source_resources`, `source_destinations` (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Source, SourceDestination, SourceResource


async def get(session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID) -> Source | None:
    stmt = select(Source).where(Source.org_id == org_id, Source.id == source_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def existing_ids(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    wanted = set(ids)
    if not wanted:
        return set()
    stmt = select(Source.id).where(Source.org_id == org_id, Source.id.in_(wanted))
    return set((await session.execute(stmt)).scalars())


async def get_many(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Source]:
    wanted = set(ids)
    if not wanted:
        return {}
    stmt = select(Source).where(Source.org_id == org_id, Source.id.in_(wanted))
    return {s.id: s for s in (await session.execute(stmt)).scalars()}


async def list_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[Source]:
    stmt = select(Source).where(Source.org_id == org_id).order_by(Source.created_at, Source.id)
    return list((await session.execute(stmt)).scalars())


async def add(session: AsyncSession, source: Source) -> Source:
    session.add(source)
    await session.flush()
    return source


async def touch(session: AsyncSession, source: Source) -> None:
    source.updated_at = func.now()
    await session.flush()


async def delete_one(session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID) -> bool:
    stmt = delete(Source).where(Source.org_id == org_id, Source.id == source_id).returning(Source.id)
    return (await session.execute(stmt)).first() is not None


async def bindings(
    session: AsyncSession, org_id: uuid.UUID, source_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, uuid.UUID]]:
    stmt = (
        select(SourceResource)
        .join(Source, Source.id == SourceResource.source_id)
        .where(Source.org_id == org_id)
        .order_by(SourceResource.slot)
    )
    if source_ids is not None:
        stmt = stmt.where(SourceResource.source_id.in_(set(source_ids)))
    result: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    for row in (await session.execute(stmt)).scalars():
        result.setdefault(row.source_id, {})[row.slot] = row.resource_id
    return result


async def destination_links(
    session: AsyncSession, org_id: uuid.UUID, source_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[uuid.UUID]]:
    stmt = (
        select(SourceDestination)
        .join(Source, Source.id == SourceDestination.source_id)
        .where(Source.org_id == org_id)
        .order_by(SourceDestination.position, SourceDestination.destination_id)
    )
    if source_ids is not None:
        stmt = stmt.where(SourceDestination.source_id.in_(set(source_ids)))
    result: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (await session.execute(stmt)).scalars():
        result.setdefault(row.source_id, []).append(row.destination_id)
    return result


def _owned(org_id: uuid.UUID) -> Any:
    return select(Source.id).where(Source.org_id == org_id)


async def replace_bindings(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, values: Mapping[str, uuid.UUID]
) -> None:
    """Replace the source's slots (the caller checked the source and the resources belong to org_id)."""
    await session.execute(
        delete(SourceResource).where(
            SourceResource.source_id == source_id, SourceResource.source_id.in_(_owned(org_id))
        )
    )
    if values:
        await session.execute(
            insert(SourceResource), [{"source_id": source_id, "slot": s, "resource_id": r} for s, r in values.items()]
        )


async def replace_destinations(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(
        delete(SourceDestination).where(
            SourceDestination.source_id == source_id, SourceDestination.source_id.in_(_owned(org_id))
        )
    )
    if ids:
        await session.execute(
            insert(SourceDestination),
            [{"source_id": source_id, "destination_id": d, "position": i} for i, d in enumerate(ids)],
        )
