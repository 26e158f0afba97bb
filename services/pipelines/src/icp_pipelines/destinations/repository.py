"""Queries on `destinations` and `destination_resources` (org_id everywhere; flush, never commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Destination, DestinationResource


async def get(session: AsyncSession, org_id: uuid.UUID, destination_id: uuid.UUID) -> Destination | None:
    stmt = select(Destination).where(Destination.org_id == org_id, Destination.id == destination_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def existing_ids(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    wanted = set(ids)
    if not wanted:
        return set()
    stmt = select(Destination.id).where(Destination.org_id == org_id, Destination.id.in_(wanted))
    return set((await session.execute(stmt)).scalars())


async def list_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[Destination]:
    stmt = select(Destination).where(Destination.org_id == org_id).order_by(Destination.created_at, Destination.id)
    return list((await session.execute(stmt)).scalars())


async def list_by_ids(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> list[Destination]:
    wanted = set(ids)
    if not wanted:
        return []
    stmt = select(Destination).where(Destination.org_id == org_id, Destination.id.in_(wanted))
    return list((await session.execute(stmt)).scalars())


async def bindings(
    session: AsyncSession, org_id: uuid.UUID, destination_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, uuid.UUID]]:
    """`{destination_id: {slot: resource_id}}` for the org's destinations (or the given ones), one query."""
    wanted = None if destination_ids is None else set(destination_ids)
    if wanted is not None and not wanted:
        return {}  # before building the statement: the worker's plan asks with none for most runs
    stmt = (
        select(DestinationResource)
        .join(Destination, Destination.id == DestinationResource.destination_id)
        .where(Destination.org_id == org_id)
        .order_by(DestinationResource.slot)
    )
    if wanted is not None:
        stmt = stmt.where(DestinationResource.destination_id.in_(wanted))
    result: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    for row in (await session.execute(stmt)).scalars():
        result.setdefault(row.destination_id, {})[row.slot] = row.resource_id
    return result


async def add(session: AsyncSession, destination: Destination) -> Destination:
    session.add(destination)
    await session.flush()
    return destination


async def touch(session: AsyncSession, destination: Destination) -> None:
    """Flush the row's changes and stamp `updated_at` (also when only its bindings changed)."""
    destination.updated_at = func.now()
    await session.flush()


async def replace_bindings(
    session: AsyncSession, org_id: uuid.UUID, destination_id: uuid.UUID, bindings: Mapping[str, uuid.UUID]
) -> None:
    """Replace the slots of a destination of `org_id` (the caller checked ownership)."""
    owned = select(Destination.id).where(Destination.org_id == org_id)
    await session.execute(
        delete(DestinationResource).where(
            DestinationResource.destination_id == destination_id, DestinationResource.destination_id.in_(owned)
        )
    )
    if bindings:
        await session.execute(
            insert(DestinationResource),
            [{"destination_id": destination_id, "slot": s, "resource_id": r} for s, r in bindings.items()],
        )


async def delete_one(session: AsyncSession, org_id: uuid.UUID, destination_id: uuid.UUID) -> bool:
    stmt = (
        delete(Destination)
        .where(Destination.org_id == org_id, Destination.id == destination_id)
        .returning(Destination.id)
    )
    return (await session.execute(stmt)).first() is not None
