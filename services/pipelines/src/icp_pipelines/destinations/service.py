"""Destination use cases (catalog-checked key, config and resource slots; tenant scoped)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable

from ..catalog.loader import CatalogIndex
from ..resources import service as resources_service
from . import repository
from .models import Destination
from .schemas import DestinationRead


def not_found(destination_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Destination {destination_id} not found")


def read(row: Destination, bindings: dict[str, uuid.UUID]) -> DestinationRead:
    return DestinationRead(
        id=row.id, key=row.key, name=row.name, config=row.config, resources=bindings, created_at=row.created_at
    )


def _validate(catalog: CatalogIndex, key: str, config: dict[str, Any] | None) -> None:
    if catalog.kind_of(key) != "destination":
        raise Unprocessable(f"Unknown destination key: {key}")
    errors = catalog.validate_config(key, config or {})
    if errors:
        raise Unprocessable([{**e, "loc": ["body", "config", *e["loc"]]} for e in errors])


async def list_destinations(session: AsyncSession, caller: Member) -> list[DestinationRead]:
    org_id = caller.org_id
    rows = await repository.list_for_org(session, org_id)
    bindings = await repository.bindings(session, org_id)
    return [read(r, bindings.get(r.id, {})) for r in rows]


async def reads_for(
    session: AsyncSession, org_id: uuid.UUID, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, DestinationRead]:
    """Destinations by id with their bindings (two queries), for sources' and assets' bodies."""
    wanted = set(ids)
    rows = await repository.list_by_ids(session, org_id, wanted)
    bindings = await repository.bindings(session, org_id, wanted)
    return {r.id: read(r, bindings.get(r.id, {})) for r in rows}


async def check_ids(session: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The given destination ids, de-duplicated in order; one not in the organisation -> 404."""
    found = await repository.existing_ids(session, org_id, ids)
    for destination_id in ids:
        if destination_id not in found:
            raise not_found(destination_id)
    return list(dict.fromkeys(ids))


async def create(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    *,
    key: str,
    name: str | None,
    config: dict[str, Any] | None,
    resources: dict[str, uuid.UUID] | None,
) -> DestinationRead:
    org_id = caller.org_id
    _validate(catalog, key, config)
    bindings = await resources_service.check_bindings(
        session, org_id, catalog, key, resources or {}, slots=catalog.slots(key)
    )
    row = await repository.add(session, Destination(org_id=org_id, key=key, name=name, config=config))
    await repository.replace_bindings(session, org_id, row.id, bindings)
    return read(row, bindings)


async def update(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    destination_id: uuid.UUID,
    *,
    name: str | None,
    config: dict[str, Any] | None,
    resources: dict[str, uuid.UUID] | None,
) -> DestinationRead:
    org_id = caller.org_id
    row = await repository.get(session, org_id, destination_id)
    if row is None:
        raise not_found(destination_id)
    if config is not None:
        _validate(catalog, row.key, config)
    if name is not None:
        row.name = name
    if config is not None:
        row.config = config
    if resources is not None:
        bindings = await resources_service.check_bindings(
            session, org_id, catalog, row.key, resources, slots=catalog.slots(row.key)
        )
        await repository.replace_bindings(session, org_id, row.id, bindings)
    await repository.touch(session, row)
    current = (await repository.bindings(session, org_id, [row.id])).get(row.id, {})
    return read(row, current)


async def delete(session: AsyncSession, caller: Member, destination_id: uuid.UUID) -> None:
    """Delete a destination; its links to sources and assets and its bindings go with it."""
    if not await repository.delete_one(session, caller.org_id, destination_id):
        raise not_found(destination_id)
