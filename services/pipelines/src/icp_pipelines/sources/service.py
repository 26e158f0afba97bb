"""Source use cases: a source row, its bindings, one asset row per selected asset type of the
catalog source, the intra-source dependency edges the catalog declares, and cross-source edges."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable

from ..assets import repository as assets_repository
from ..assets import service as assets_service
from ..assets.models import Asset
from ..assets.repository import Edge
from ..catalog.loader import CatalogIndex
from ..destinations import service as destinations_service
from ..resources import service as resources_service
from . import repository
from .models import Source
from .schemas import SourceAssetRead, SourceRead


def not_found(source_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Source {source_id} not found")


async def reads(
    session: AsyncSession, org_id: uuid.UUID, rows: Sequence[Source], *, all_of_org: bool
) -> list[SourceRead]:
    """Source bodies: six queries whatever the number of sources."""
    ids = None if all_of_org else [r.id for r in rows]
    bindings = await repository.bindings(session, org_id, ids)
    links = await repository.destination_links(session, org_id, ids)
    destinations = await destinations_service.reads_for(session, org_id, {d for ds in links.values() for d in ds})
    assets = await assets_repository.for_sources(session, org_id, ids)
    result = []
    for r in rows:
        linked = [d for d in links.get(r.id, []) if d in destinations]
        result.append(
            SourceRead(
                id=r.id,
                org_id=r.org_id,
                key=r.key,
                name=r.name,
                config=r.config,
                resources=bindings.get(r.id, {}),
                destinations=[destinations[d] for d in linked],
                destination_ids=linked,
                assets=[
                    SourceAssetRead(id=a.id, key=a.key, materializable=a.materializable) for a in assets.get(r.id, [])
                ],
                created_at=r.created_at,
            )
        )
    return result


async def list_sources(session: AsyncSession, caller: Member) -> list[SourceRead]:
    org_id = caller.org_id
    return await reads(session, org_id, await repository.list_for_org(session, org_id), all_of_org=True)


async def check_ids(session: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    found = await repository.existing_ids(session, org_id, ids)
    for source_id in ids:
        if source_id not in found:
            raise not_found(source_id)
    return list(dict.fromkeys(ids))


def _validate_config(catalog: CatalogIndex, key: str, config: dict[str, Any] | None) -> None:
    errors = catalog.validate_config(key, config or {})
    if errors:
        raise Unprocessable([{**e, "loc": ["body", "config", *e["loc"]]} for e in errors])


def _selected_keys(catalog: CatalogIndex, key: str, asset_keys: Iterable[str] | None) -> list[str]:
    known = list(catalog.source_assets(key))
    if asset_keys is None:
        return known
    wanted = list(dict.fromkeys(asset_keys))
    for asset_key in wanted:
        if asset_key not in known:
            raise Unprocessable(f"Unknown asset key '{asset_key}' for source {key}")
    return [k for k in known if k in wanted]


async def _wire_intra(
    session: AsyncSession, catalog: CatalogIndex, source_key: str, rows: dict[str, Asset], new_keys: set[str]
) -> None:
    """Edges the catalog declares between sibling assets (param name -> sibling), for new rows."""
    specs = catalog.source_assets(source_key)
    edges: list[Edge] = []
    for key, row in rows.items():
        spec = specs.get(key)
        if spec is None:
            continue
        for param, qualified in {**spec.optional_requires, **spec.requires}.items():
            owner, _, sibling = qualified.rpartition(".")
            if owner != source_key or sibling not in rows or sibling == key:
                continue
            if key in new_keys or sibling in new_keys:
                edges.append(Edge(row.id, rows[sibling].id, param))
    await assets_repository.add_edges(session, edges)


async def _apply_cross_deps(
    session: AsyncSession,
    org_id: uuid.UUID,
    source_key: str,
    rows: dict[str, Asset],
    cross_deps: dict[str, dict[str, uuid.UUID | None]],
) -> None:
    for asset_key in cross_deps:
        if asset_key not in rows:
            raise Unprocessable(f"Unknown asset key '{asset_key}' for source {source_key}")
    upstream_ids = {u for params in cross_deps.values() for u in params.values() if u is not None}
    found = await assets_repository.get_many(session, org_id, upstream_ids)
    for upstream in upstream_ids:
        if upstream not in found:
            raise NotFound(f"Upstream asset {upstream} not found")
    for asset_key, params in cross_deps.items():
        await assets_service.set_param_dependencies(session, org_id, rows[asset_key].id, params)


async def create(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    *,
    key: str,
    name: str,
    config: dict[str, Any] | None = None,
    resources: dict[str, uuid.UUID] | None = None,
    asset_keys: list[str] | None = None,
    destination_ids: list[uuid.UUID] | None = None,
    cross_deps: dict[str, dict[str, uuid.UUID | None]] | None = None,
) -> SourceRead:
    org_id = caller.org_id
    if catalog.kind_of(key) != "source":
        raise Unprocessable(f"Unknown source key: {key}")
    _validate_config(catalog, key, config)
    selected = _selected_keys(catalog, key, asset_keys)
    bindings = await resources_service.check_bindings(
        session, org_id, catalog, key, resources or {}, slots=catalog.slots(key)
    )
    destinations = await destinations_service.check_ids(session, org_id, destination_ids or [])
    row = await repository.add(session, Source(org_id=org_id, key=key, name=name, config=config))
    await repository.replace_bindings(session, org_id, row.id, bindings)
    await repository.replace_destinations(session, org_id, row.id, destinations)
    assets = {a.key: a for a in await assets_repository.add_for_source(session, org_id, row.id, selected)}
    await _wire_intra(session, catalog, key, assets, set(assets))
    if cross_deps:
        await _apply_cross_deps(session, org_id, key, assets, cross_deps)
    return (await reads(session, org_id, [row], all_of_org=False))[0]


async def update(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    source_id: uuid.UUID,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    resources: dict[str, uuid.UUID] | None = None,
    asset_keys: list[str] | None = None,
    destination_ids: list[uuid.UUID] | None = None,
    cross_deps: dict[str, dict[str, uuid.UUID | None]] | None = None,
) -> SourceRead:
    org_id = caller.org_id
    row = await repository.get(session, org_id, source_id)
    if row is None:
        raise not_found(source_id)
    if config is not None:
        _validate_config(catalog, row.key, config)
    existing = {a.key: a for a in (await assets_repository.for_sources(session, org_id, [row.id])).get(row.id, [])}
    if asset_keys is None:
        wanted = list(existing) + [k for k in catalog.source_assets(row.key) if k not in existing]
    else:
        wanted = _selected_keys(catalog, row.key, asset_keys)
    if resources is not None:
        bindings = await resources_service.check_bindings(
            session, org_id, catalog, row.key, resources, slots=catalog.slots(row.key)
        )
        await repository.replace_bindings(session, org_id, row.id, bindings)
    if destination_ids is not None:
        destinations = await destinations_service.check_ids(session, org_id, destination_ids)
        await repository.replace_destinations(session, org_id, row.id, destinations)
    if name is not None:
        row.name = name
    if config is not None:
        row.config = config
    await assets_repository.delete_for_source(session, org_id, row.id, set(existing) - set(wanted))
    new_keys = [k for k in wanted if k not in existing]
    added = await assets_repository.add_for_source(session, org_id, row.id, new_keys)
    assets = {k: a for k, a in existing.items() if k in wanted} | {a.key: a for a in added}
    await _wire_intra(session, catalog, row.key, assets, {a.key for a in added})
    if cross_deps:
        await _apply_cross_deps(session, org_id, row.key, assets, cross_deps)
    await repository.touch(session, row)
    return (await reads(session, org_id, [row], all_of_org=False))[0]


async def delete(session: AsyncSession, caller: Member, source_id: uuid.UUID) -> None:
    """Delete a source with its assets (and their edges, bindings and job links)."""
    if not await repository.delete_one(session, caller.org_id, source_id):
        raise not_found(source_id)
