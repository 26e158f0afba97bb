"""Queries on `assets`, their bindings and `asset_dependencies` (org_id everywhere; flush only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    String,
    Uuid,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
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


# Statements the worker's plan reads for every run, built once (bound parameters only).
_ORG = bindparam("r_org_id", type_=Uuid)
_IDS = bindparam("r_ids", type_=Uuid, expanding=True)
GET_MANY = select(Asset).where(Asset.org_id == _ORG, Asset.id.in_(_IDS))


async def get_many(session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Asset]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {a.id: a for a in (await session.execute(GET_MANY, {"r_org_id": org_id, "r_ids": list(wanted)})).scalars()}


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
    params: dict[str, Any] = {"r_org_id": org_id}
    if asset_ids is not None:
        params["r_ids"] = list(set(asset_ids))
        if not params["r_ids"]:
            return {}
    result: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
    for row in (await session.execute(_BINDINGS[asset_ids is not None], params)).scalars():
        result.setdefault(row.asset_id, {})[row.slot] = row.resource_id
    return result


async def destination_links(
    session: AsyncSession, org_id: uuid.UUID, asset_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[uuid.UUID]]:
    params: dict[str, Any] = {"r_org_id": org_id}
    if asset_ids is not None:
        params["r_ids"] = list(set(asset_ids))
        if not params["r_ids"]:
            return {}
    result: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in (await session.execute(_DESTINATION_LINKS[asset_ids is not None], params)).scalars():
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
    rows = (await session.execute(_NEIGHBOURHOOD[upstream], {"r_org_id": org_id, "r_ids": list(wanted)})).scalars()
    return [Edge(d.asset_id, d.upstream_asset_id, d.param_name) for d in rows]


def _parts() -> Any:
    """`parts` in one statement: (kind, asset, name, target, position) rows of the three tables."""
    owned = Asset.org_id == _ORG

    def of(table: Any, kind: str, name: Any, target: Any, position: Any) -> Any:
        return (
            select(
                literal_column(f"'{kind}'").label("kind"),
                table.asset_id,
                name.label("name"),
                target.label("target"),
                position,
            )
            .join(Asset, Asset.id == table.asset_id)
            .where(owned, table.asset_id.in_(_IDS))
        )

    none: Any = cast(null(), String)
    zero: Any = literal_column("0")
    return union_all(
        of(AssetResource, "resource", AssetResource.slot, AssetResource.resource_id, zero.label("position")),
        of(AssetDestination, "destination", none, AssetDestination.destination_id, AssetDestination.position),
        of(AssetDependency, "upstream", AssetDependency.param_name, AssetDependency.upstream_asset_id, zero),
    )


_PARTS = _parts()


@dataclass
class Parts:
    """An asset's slots `{slot: resource id}`, destinations (in order) and upstream assets `{param: id}`."""

    bindings: dict[uuid.UUID, dict[str, uuid.UUID]]
    destinations: dict[uuid.UUID, list[uuid.UUID]]
    upstream: dict[uuid.UUID, dict[str, uuid.UUID]]


async def parts(session: AsyncSession, org_id: uuid.UUID, asset_ids: Iterable[uuid.UUID]) -> Parts:
    """What `bindings`, `destination_links` and `neighbourhood(upstream=True)` return for these
    assets, in one round trip (the worker's plan of every run)."""
    out = Parts({}, {}, {})
    wanted = list(set(asset_ids))
    if not wanted:
        return out
    rows = (await session.execute(_PARTS, {"r_org_id": org_id, "r_ids": wanted})).all()
    # The orders of the separate queries: slots by name, destinations by (position, id).
    for kind, asset_id, name, target, _ in sorted(rows, key=lambda r: (r[4], r[2] or "", r[3])):
        if kind == "resource":
            out.bindings.setdefault(asset_id, {})[name] = target
        elif kind == "destination":
            out.destinations.setdefault(asset_id, []).append(target)
        else:
            out.upstream.setdefault(asset_id, {})[name] = target
    return out


def _neighbourhood(upstream: bool) -> Any:
    near = AssetDependency.asset_id if upstream else AssetDependency.upstream_asset_id
    return (
        select(AssetDependency)
        .join(Asset, Asset.id == AssetDependency.asset_id)
        .where(Asset.org_id == _ORG, near.in_(_IDS))
    )


_NEIGHBOURHOOD = {upstream: _neighbourhood(upstream) for upstream in (False, True)}
_BINDINGS = {
    of_assets: select(AssetResource)
    .join(Asset, Asset.id == AssetResource.asset_id)
    .where(Asset.org_id == _ORG, *([AssetResource.asset_id.in_(_IDS)] if of_assets else []))
    .order_by(AssetResource.slot)
    for of_assets in (False, True)
}
_DESTINATION_LINKS = {
    of_assets: select(AssetDestination)
    .join(Asset, Asset.id == AssetDestination.asset_id)
    .where(Asset.org_id == _ORG, *([AssetDestination.asset_id.in_(_IDS)] if of_assets else []))
    .order_by(AssetDestination.position, AssetDestination.destination_id)
    for of_assets in (False, True)
}
