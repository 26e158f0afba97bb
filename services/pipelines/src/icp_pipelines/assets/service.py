"""Asset use cases: standalone assets, per-asset overrides, dependency edges (no self-edges, no
cycles, no duplicates, both ends in the caller's organisation) and lineage walks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import Conflict, InvalidInput, NotFound, Unprocessable

from ..catalog.loader import CatalogIndex
from ..destinations import service as destinations_service
from ..resources import service as resources_service
from . import repository
from .models import Asset
from .repository import Edge
from .schemas import AssetRead, DependencyRead


def not_found(asset_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Asset {asset_id} not found")


async def reads(
    session: AsyncSession, org_id: uuid.UUID, rows: Sequence[Asset], *, all_of_org: bool
) -> list[AssetRead]:
    """Asset bodies with bindings and destinations: a fixed number of queries for any number of rows."""
    ids = None if all_of_org else [r.id for r in rows]
    bindings = await repository.bindings(session, org_id, ids)
    links = await repository.destination_links(session, org_id, ids)
    destinations = await destinations_service.reads_for(session, org_id, {d for ds in links.values() for d in ds})
    return [
        AssetRead(
            id=r.id,
            source_id=r.source_id,
            org_id=r.org_id,
            key=r.key,
            materializable=r.materializable,
            config=r.config,
            resources=bindings.get(r.id, {}),
            destinations=[destinations[d] for d in links.get(r.id, []) if d in destinations],
            created_at=r.created_at,
        )
        for r in rows
    ]


async def list_assets(session: AsyncSession, caller: Member, source_id: uuid.UUID | None = None) -> list[AssetRead]:
    org_id = caller.org_id
    rows = await repository.list_for_org(session, org_id, source_id=source_id)
    return await reads(session, org_id, rows, all_of_org=source_id is None)


async def _get_row(session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID) -> Asset:
    row = await repository.get(session, org_id, asset_id)
    if row is None:
        raise not_found(asset_id)
    return row


async def get(session: AsyncSession, caller: Member, asset_id: uuid.UUID) -> AssetRead:
    org_id = caller.org_id
    row = await _get_row(session, org_id, asset_id)
    return (await reads(session, org_id, [row], all_of_org=False))[0]


async def _slots(
    session: AsyncSession, org_id: uuid.UUID, catalog: CatalogIndex, row: Asset
) -> tuple[str, dict[str, str]]:
    """The component key used in messages and the resource slots an asset row may bind."""
    if row.source_id is None:
        spec = catalog.standalone_asset(row.key)
        return row.key, dict(spec.resources) if spec else {}
    source_key = (await repository.source_keys(session, org_id, [row.id])).get(row.id, "")
    spec = catalog.source_assets(source_key).get(row.key)
    return f"{source_key}.{row.key}", {**catalog.slots(source_key), **(spec.resources if spec else {})}


async def create(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    *,
    key: str,
    config: dict[str, Any] | None,
    resources: dict[str, uuid.UUID] | None,
    destination_ids: list[uuid.UUID] | None,
) -> AssetRead:
    """A standalone asset (`source_id` null, materializable) of a catalog asset key."""
    org_id = caller.org_id
    spec = catalog.standalone_asset(key)
    if spec is None:
        raise Unprocessable(f"Unknown asset key: {key}")
    bindings = await resources_service.check_bindings(
        session, org_id, catalog, key, resources or {}, slots=spec.resources
    )
    destinations = await destinations_service.check_ids(session, org_id, destination_ids or [])
    row = await repository.add(session, Asset(org_id=org_id, key=key, config=config, materializable=True))
    await repository.replace_bindings(session, org_id, row.id, bindings)
    await repository.replace_destinations(session, org_id, row.id, destinations)
    return (await reads(session, org_id, [row], all_of_org=False))[0]


async def update(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    asset_id: uuid.UUID,
    *,
    materializable: bool | None = None,
    config: dict[str, Any] | None = None,
    resources: dict[str, uuid.UUID] | None = None,
    destination_ids: list[uuid.UUID] | None = None,
) -> AssetRead:
    org_id = caller.org_id
    row = await _get_row(session, org_id, asset_id)
    if resources is not None:
        component, slots = await _slots(session, org_id, catalog, row)
        bindings = await resources_service.check_bindings(session, org_id, catalog, component, resources, slots=slots)
        await repository.replace_bindings(session, org_id, row.id, bindings)
    if destination_ids is not None:
        destinations = await destinations_service.check_ids(session, org_id, destination_ids)
        await repository.replace_destinations(session, org_id, row.id, destinations)
    if materializable is not None:
        row.materializable = materializable
    if config is not None:
        row.config = config
    await repository.touch(session, row)
    return (await reads(session, org_id, [row], all_of_org=False))[0]


async def delete(session: AsyncSession, caller: Member, asset_id: uuid.UUID) -> None:
    org_id = caller.org_id
    row = await _get_row(session, org_id, asset_id)
    if row.source_id is not None:
        raise InvalidInput("Cannot delete a source-owned asset directly. Delete or update the source instead.")
    await repository.delete_one(session, org_id, asset_id)


# ---- dependencies


async def list_dependencies(session: AsyncSession, caller: Member) -> list[DependencyRead]:
    edges = await repository.edges_for_org(session, caller.org_id)
    return [DependencyRead(asset_id=e.asset_id, upstream_asset_id=e.upstream_asset_id) for e in edges]


async def list_edges(session: AsyncSession, caller: Member) -> list[Edge]:
    """Every edge (with its parameter name) whose downstream asset is in the organisation."""
    return await repository.edges_for_org(session, caller.org_id)


async def source_keys(session: AsyncSession, caller: Member, asset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """`{asset_id: key of its source}` for the source-owned ones among `asset_ids`."""
    return await repository.source_keys(session, caller.org_id, asset_ids)


async def check_edge(session: AsyncSession, edge: Edge) -> None:
    """422 for a self-dependency or an edge closing a cycle; 409 for an existing edge."""
    if edge.asset_id == edge.upstream_asset_id:
        raise Unprocessable("An asset cannot depend on itself")
    if await repository.edge_exists(session, edge):
        raise Conflict("Dependency already exists")
    if await repository.reaches_upstream(session, edge.upstream_asset_id, edge.asset_id):
        raise Unprocessable(f"Dependency {edge.upstream_asset_id} -> {edge.asset_id} would create a cycle")


async def add_dependency(
    session: AsyncSession, caller: Member, asset_id: uuid.UUID, upstream_asset_id: uuid.UUID, param_name: str
) -> DependencyRead:
    org_id = caller.org_id
    found = await repository.get_many(session, org_id, [asset_id, upstream_asset_id])
    if asset_id not in found:
        raise not_found(asset_id)
    if upstream_asset_id not in found:
        raise NotFound(f"Upstream asset {upstream_asset_id} not found")
    if not param_name.strip():
        raise Unprocessable("param_name must not be empty")
    edge = Edge(asset_id, upstream_asset_id, param_name)
    await check_edge(session, edge)
    await repository.add_edges(session, [edge])
    return DependencyRead(asset_id=asset_id, upstream_asset_id=upstream_asset_id)


async def remove_dependency(
    session: AsyncSession,
    caller: Member,
    asset_id: uuid.UUID,
    upstream_asset_id: uuid.UUID,
    param_name: str | None = None,
) -> None:
    """Remove the edges between the two assets (only the one of `param_name` when given)."""
    org_id = caller.org_id
    found = await repository.get_many(session, org_id, [asset_id, upstream_asset_id])
    if asset_id not in found:
        raise not_found(asset_id)
    if upstream_asset_id not in found:
        raise NotFound(f"Upstream asset {upstream_asset_id} not found")
    if not await repository.delete_edges(session, org_id, asset_id, upstream_asset_id, param_name):
        raise NotFound(f"Dependency of {asset_id} on {upstream_asset_id} not found")


async def set_param_dependencies(
    session: AsyncSession, org_id: uuid.UUID, asset_id: uuid.UUID, params: dict[str, uuid.UUID | None]
) -> None:
    """For each param: drop the asset's edges of that param, then add one to the given upstream
    (which the caller checked belongs to the organisation); `None` only drops."""
    new: list[Edge] = []
    for param, upstream in params.items():
        await repository.delete_param_edges(session, org_id, asset_id, param)
        if upstream is not None:
            new.append(Edge(asset_id, upstream, param))
    for edge in new:
        await check_edge(session, edge)
        await repository.add_edges(session, [edge])


# ---- lineage


Direction = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class LineageNode:
    asset: Asset
    source_key: str
    depth: int
    direction: Direction


@dataclass(frozen=True)
class Lineage:
    asset: AssetRead
    source_key: str
    nodes: list[LineageNode]
    edges: list[Edge]


async def lineage(
    session: AsyncSession,
    caller: Member,
    asset_id: uuid.UUID,
    *,
    directions: Iterable[Direction] = ("upstream", "downstream"),
    max_depth: int = 0,
) -> Lineage:
    """Breadth-first walk (one query per level and direction), every node at its smallest depth;
    `max_depth` 0 = unbounded (negative: 422)."""
    if max_depth < 0:
        raise Unprocessable("max_depth must not be negative")
    org_id = caller.org_id
    start = await _get_row(session, org_id, asset_id)
    depth_of: dict[uuid.UUID, tuple[int, Direction]] = {}
    edges: dict[tuple[uuid.UUID, uuid.UUID, str], Edge] = {}
    for direction in directions:
        frontier = {asset_id}
        seen = {asset_id}
        depth = 0
        while frontier and (max_depth <= 0 or depth < max_depth):
            depth += 1
            step = await repository.neighbourhood(session, org_id, frontier, upstream=direction == "upstream")
            frontier = set()
            for edge in step:
                edges[(edge.asset_id, edge.upstream_asset_id, edge.param_name)] = edge
                far = edge.upstream_asset_id if direction == "upstream" else edge.asset_id
                if far not in seen:
                    seen.add(far)
                    frontier.add(far)
                    if far not in depth_of or depth_of[far][0] > depth:
                        depth_of[far] = (depth, direction)
    rows = await repository.get_many(session, org_id, depth_of)
    source_keys = await repository.source_keys(session, org_id, [asset_id, *rows])
    nodes = [
        LineageNode(rows[a], source_keys.get(a, ""), d, direction)
        for a, (d, direction) in sorted(depth_of.items(), key=lambda item: (item[1][0], str(item[0])))
        if a in rows
    ]
    kept = set(rows) | {asset_id}
    kept_edges = [e for e in edges.values() if e.asset_id in kept and e.upstream_asset_id in kept]
    body = (await reads(session, org_id, [start], all_of_org=False))[0]
    return Lineage(body, source_keys.get(asset_id, ""), nodes, kept_edges)
