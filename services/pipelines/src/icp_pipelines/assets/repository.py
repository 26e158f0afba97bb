"""Queries on `assets`, their bindings and `asset_dependencies` (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..sources.models import Source
from .models import Asset, AssetDependency, AssetDestination, AssetResource


@dataclass(frozen=True)
class Edge:
    asset_id: uuid.UUID
    upstream_asset_id: uuid.UUID
    param_name: str


async def get(session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID) -> Asset | None:
    stmt = select(Asset).where(Asset.org_id == org_id, Asset.id == asset_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_many(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Asset]:
    wanted = set(ids)
    if not wanted:
        return {}
    stmt = select(Asset).where(Asset.org_id == org_id, Asset.id.in_(wanted))
    return {a.id: a for a in (await session.execute(stmt)).scalars()}


async def list_for_org(session: AsyncSession, org_id: uuid.UUID, *, source_id: uuid.UUID | None = None) -> list[Asset]:
    stmt = select(Asset).where(Asset.org_id == org_id)
    if source_id is not None:
        stmt = stmt.where(Asset.source_id == source_id)
    return list((await session.execute(stmt.order_by(Asset.created_at, Asset.id))).scalars())


async def for_sources(
    session: AsyncSession, org_id: uuid.UUID, source_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[Asset]]:
    """`{source_id: [asset rows]}` (one query) for the org's sources or the given ones."""
    stmt = select(Asset).where(Asset.org_id == org_id, Asset.source_id.is_not(None))
    if source_ids is not None:
        wanted = set(source_ids)
        if not wanted:
            return {}
        stmt = stmt.where(Asset.source_id.in_(wanted))
    result: dict[uuid.UUID, list[Asset]] = {}
    for row in (await session.execute(stmt.order_by(Asset.created_at, Asset.id))).scalars():
        assert row.source_id is not None
        result.setdefault(row.source_id, []).append(row)
    return result


async def source_keys(session: AsyncSession, org_id: uuid.UUID, asset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """`{asset_id: source key}` for source-owned assets among `asset_ids` (one query)."""
    wanted = set(asset_ids)
    if not wanted:
        return {}
    stmt = (
        select(Asset.id, Source.key)
        .join(Source, Source.id == Asset.source_id)
        .where(Asset.org_id == org_id, Asset.id.in_(wanted))
    )
    return {row[0]: row[1] for row in (await session.execute(stmt)).all()}


async def add(session: AsyncSession, asset: Asset) -> Asset:
    session.add(asset)
    await session.flush()
    return asset


async def add_for_source(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, keys: Sequence[str]
) -> list[Asset]:
    if not keys:
        return []
    stmt = (
        insert(Asset)
        .values([{"org_id": org_id, "source_id": source_id, "key": k, "materializable": True} for k in keys])
        .returning(Asset)
    )
    return list((await session.execute(stmt)).scalars())


async def delete_for_source(
    session: AsyncSession, org_id: uuid.UUID, source_id: uuid.UUID, keys: Iterable[str]
) -> None:
    wanted = set(keys)
    if wanted:
        await session.execute(
            delete(Asset).where(Asset.org_id == org_id, Asset.source_id == source_id, Asset.key.in_(wanted))
        )


async def touch(session: AsyncSession, asset: Asset) -> None:
    asset.updated_at = func.now()
    await session.flush()


async def delete_one(session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID) -> None:
    await session.execute(delete(Asset).where(Asset.org_id == org_id, Asset.id == asset_id))


# ---- bindings


async def bindings(
    session: AsyncSession, org_id: uuid.UUID, asset_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, uuid.UUID]]:
    stmt = (
        select(AssetResource)
        .join(Asset, Asset.id == AssetResource.asset_id)
        .where(Asset.org_id == org_id)
        .order_by(AssetResource.slot)
    )
    if asset_ids is not None:
        wanted = set(asset_ids)
        if not wanted:
            return {}
        stmt = stmt.where(AssetResource.asset_id.in_(wanted))
    result: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    for row in (await session.execute(stmt)).scalars():
        result.setdefault(row.asset_id, {})[row.slot] = row.resource_id
    return result


async def destination_links(
    session: AsyncSession, org_id: uuid.UUID, asset_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[uuid.UUID]]:
    stmt = (
        select(AssetDestination)
        .join(Asset, Asset.id == AssetDestination.asset_id)
        .where(Asset.org_id == org_id)
        .order_by(AssetDestination.position, AssetDestination.destination_id)
    )
    if asset_ids is not None:
        wanted = set(asset_ids)
        if not wanted:
            return {}
        stmt = stmt.where(AssetDestination.asset_id.in_(wanted))
    result: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (await session.execute(stmt)).scalars():
        result.setdefault(row.asset_id, []).append(row.destination_id)
    return result


def _owned(org_id: uuid.UUID) -> Any:
    return select(Asset.id).where(Asset.org_id == org_id)


async def replace_bindings(
    session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID, values: Mapping[str, uuid.UUID]
) -> None:
    """Replace the asset's slots (the caller checked the asset and the resources belong to org_id)."""
    await session.execute(
        delete(AssetResource).where(AssetResource.asset_id == asset_id, AssetResource.asset_id.in_(_owned(org_id)))
    )
    if values:
        await session.execute(
            insert(AssetResource), [{"asset_id": asset_id, "slot": s, "resource_id": r} for s, r in values.items()]
        )


async def replace_destinations(
    session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(
        delete(AssetDestination).where(
            AssetDestination.asset_id == asset_id, AssetDestination.asset_id.in_(_owned(org_id))
        )
    )
    if ids:
        await session.execute(
            insert(AssetDestination),
            [{"asset_id": asset_id, "destination_id": d, "position": i} for i, d in enumerate(ids)],
        )


# ---- dependencies


async def edges_for_org(session: AsyncSession, org_id: uuid.UUID) -> list[Edge]:
    """Every edge whose downstream asset belongs to the organisation."""
    stmt = (
        select(AssetDependency)
        .join(Asset, Asset.id == AssetDependency.asset_id)
        .where(Asset.org_id == org_id)
        .order_by(AssetDependency.asset_id, AssetDependency.param_name, AssetDependency.upstream_asset_id)
    )
    return [Edge(d.asset_id, d.upstream_asset_id, d.param_name) for d in (await session.execute(stmt)).scalars()]


async def edge_exists(session: AsyncSession, edge: Edge) -> bool:
    stmt = select(literal(1)).where(
        AssetDependency.asset_id == edge.asset_id,
        AssetDependency.upstream_asset_id == edge.upstream_asset_id,
        AssetDependency.param_name == edge.param_name,
    )
    return (await session.execute(stmt)).first() is not None


async def add_edges(session: AsyncSession, edges: Sequence[Edge]) -> None:
    if edges:
        await session.execute(
            insert(AssetDependency),
            [
                {"asset_id": e.asset_id, "upstream_asset_id": e.upstream_asset_id, "param_name": e.param_name}
                for e in edges
            ],
        )


async def delete_param_edges(session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID, param_name: str) -> None:
    await session.execute(
        delete(AssetDependency).where(
            AssetDependency.asset_id == asset_id,
            AssetDependency.param_name == param_name,
            AssetDependency.asset_id.in_(_owned(org_id)),
        )
    )


async def delete_edges(
    session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID, upstream_asset_id: uuid.UUID, param_name: str | None
) -> int:
    stmt = delete(AssetDependency).where(
        AssetDependency.asset_id == asset_id,
        AssetDependency.upstream_asset_id == upstream_asset_id,
        AssetDependency.asset_id.in_(_owned(org_id)),
    )
    if param_name is not None:
        stmt = stmt.where(AssetDependency.param_name == param_name)
    result = await session.execute(stmt.returning(AssetDependency.asset_id))
    return len(result.all())


async def reaches_upstream(session: AsyncSession, start: uuid.UUID, target: uuid.UUID) -> bool:
    """Whether `target` is `start` or one of its (transitive) upstream assets (one recursive query)."""
    if start == target:
        return True
    base = select(AssetDependency.upstream_asset_id.label("id")).where(AssetDependency.asset_id == start)
    ups = base.cte("ups", recursive=True)
    step = select(AssetDependency.upstream_asset_id).join(ups, AssetDependency.asset_id == ups.c.id)
    ups = ups.union(step)
    stmt = select(literal(1)).select_from(ups).where(ups.c.id == target).limit(1)
    return (await session.execute(stmt)).first() is not None


async def neighbourhood(
    session: AsyncSession, org_id: uuid.UUID, frontier: Iterable[uuid.UUID], *, upstream: bool
) -> list[Edge]:
    """Edges one step up (or down) from `frontier`, both ends in the organisation."""
    wanted = set(frontier)
    if not wanted:
        return []
    near = AssetDependency.asset_id if upstream else AssetDependency.upstream_asset_id
    stmt = (
        select(AssetDependency)
        .join(Asset, Asset.id == AssetDependency.asset_id)
        .where(Asset.org_id == org_id, near.in_(wanted))
    )
    return [Edge(d.asset_id, d.upstream_asset_id, d.param_name) for d in (await session.execute(stmt)).scalars()]
