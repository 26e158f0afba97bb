"""`GET /api/assets/{id}/partition-row-counts`: row counts per partition, read from the asset's
first destination (spec 2.13). The UI reads 404 as "not materialized yet"."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import Conflict, InvalidInput, NotFound, UpstreamError

from .. import tenant
from ..catalog.loader import CatalogIndex
from ..crypto import Cipher
from ..hydration.service import CatalogKeyError, Hydrator, reconstruct
from ..oauth.settings import OAuthSettings
from ..sources import repository as sources_repository
from . import repository
from .service import not_found


class PartitionCount(BaseModel):
    partition: str
    row_count: int


class PartitionRowCounts(BaseModel):
    asset_key: str
    partition_column: str
    counts: list[PartitionCount]


def _count(org_id: uuid.UUID, spec: dict[str, Any], asset_key: str, source_owned: bool) -> tuple[str, dict[str, int]]:
    with tenant.acting_for(org_id):  # catalog code keeping tenants apart reads this organisation's data
        return _count_for(spec, asset_key, source_owned)


def _count_for(spec: dict[str, Any], asset_key: str, source_owned: bool) -> tuple[str, dict[str, int]]:
    from interloper.errors import DataNotFoundError

    try:
        component = reconstruct(spec)
    except Exception as exc:
        raise Conflict(f"Cannot load asset '{asset_key}': {exc}") from exc
    asset = next((a for a in component.assets if type(a).key == asset_key), None) if source_owned else component
    if asset is None:
        raise Conflict(f"Cannot load asset '{asset_key}'")
    column = asset.partitioning.column
    try:
        counts = asset.partition_row_counts()
    except NotImplementedError as exc:
        raise InvalidInput("Destination does not support partition row counts") from exc
    except (DataNotFoundError, FileNotFoundError) as exc:
        raise NotFound(str(exc)) from exc
    except Exception as exc:
        if str(exc).startswith("No destinations found"):
            raise NotFound(str(exc)) from exc
        raise UpstreamError(str(exc)) from exc
    return column, counts


async def partition_row_counts(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    cipher: Cipher,
    asset_id: uuid.UUID,
    oauth: OAuthSettings | None = None,
) -> PartitionRowCounts:
    org_id = caller.org_id
    row = await repository.get(session, org_id, asset_id)
    if row is None:
        raise not_found(asset_id)
    hydrator = Hydrator(session, org_id, catalog, cipher, oauth)
    try:
        if row.source_id is None:
            spec_info = catalog.standalone_asset(row.key)
            spec = await hydrator.standalone_asset(row)
        else:
            source = await sources_repository.get(session, org_id, row.source_id)
            assert source is not None
            spec_info = catalog.source_assets(source.key).get(row.key)
            spec = await hydrator.source(source, [row])
    except CatalogKeyError as exc:
        raise Conflict(str(exc)) from exc
    if spec_info is None:
        raise Conflict(f"Unknown asset key: {row.key}")
    if not spec_info.partitioned:
        raise InvalidInput("Asset is not partitioned")
    column, counts = await asyncio.to_thread(_count, org_id, spec, row.key, row.source_id is not None)
    return PartitionRowCounts(
        asset_key=row.key,
        partition_column=column,
        counts=[PartitionCount(partition=p, row_count=n) for p, n in sorted(counts.items())],
    )
