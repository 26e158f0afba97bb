"""pipelines.v1 ListAssets, ListDependencies, GetLineage, SetAssetMaterializable (thin)."""

from __future__ import annotations

from typing import Any

from icp_common.db import unit_of_work
from icp_common.errors import Unprocessable
from icp_common.grpc import current_identity
from icp_common.identity import Identity, require_role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, optional_id, parse_id, struct, timestamp
from . import service
from .schemas import AssetRead

_DIRECTIONS: dict[int, tuple[service.Direction, ...]] = {
    pb.LINEAGE_DIRECTION_UNSPECIFIED: ("upstream", "downstream"),
    pb.LINEAGE_DIRECTION_UPSTREAM: ("upstream",),
    pb.LINEAGE_DIRECTION_DOWNSTREAM: ("downstream",),
}
_DIRECTION_TO_PROTO = {"upstream": pb.LINEAGE_DIRECTION_UPSTREAM, "downstream": pb.LINEAGE_DIRECTION_DOWNSTREAM}


def asset_to_proto(asset: AssetRead, source_key: str) -> pb.Asset:
    return pb.Asset(
        id=str(asset.id),
        source_id=str(asset.source_id or ""),
        source_key=source_key,
        key=asset.key,
        materializable=asset.materializable,
        config=struct(asset.config),
        resources={slot: str(r) for slot, r in asset.resources.items()},
        destination_ids=[str(d.id) for d in asset.destinations],
        created_at=timestamp(asset.created_at),
    )


class AssetsServicer(ServicerBase):
    async def _with_source_keys(self, db: Any, identity: Identity, assets: list[AssetRead]) -> list[pb.Asset]:
        keys = await service.source_keys(db, identity, [a.id for a in assets])
        return [asset_to_proto(a, keys.get(a.id, "")) for a in assets]

    async def ListAssets(self, request: pb.ListAssetsRequest, context: Any) -> pb.ListAssetsResponse:
        identity = require_role(current_identity(), "viewer")
        source_id = optional_id(request.source_id, "source_id")
        async with unit_of_work(self.sessions) as db:
            assets = await service.list_assets(db, identity, source_id)
            converted = await self._with_source_keys(db, identity, assets)
        return pb.ListAssetsResponse(assets=converted)

    async def ListDependencies(self, request: pb.ListDependenciesRequest, context: Any) -> pb.ListDependenciesResponse:
        identity = require_role(current_identity(), "viewer")
        async with unit_of_work(self.sessions) as db:
            edges = await service.list_edges(db, identity)
        return pb.ListDependenciesResponse(
            edges=[
                pb.LineageEdge(
                    asset_id=str(e.asset_id), upstream_asset_id=str(e.upstream_asset_id), param_name=e.param_name
                )
                for e in edges
            ]
        )

    async def GetLineage(self, request: pb.GetLineageRequest, context: Any) -> pb.GetLineageResponse:
        identity = require_role(current_identity(), "viewer")
        asset_id = parse_id(request.asset_id, "asset_id")
        if request.max_depth < 0:
            raise Unprocessable("max_depth must not be negative")
        directions = _DIRECTIONS.get(request.direction, ("upstream", "downstream"))
        async with unit_of_work(self.sessions) as db:
            result = await service.lineage(db, identity, asset_id, directions=directions, max_depth=request.max_depth)
        return pb.GetLineageResponse(
            asset=asset_to_proto(result.asset, result.source_key),
            nodes=[
                pb.LineageNode(
                    asset_id=str(n.asset.id),
                    asset_key=n.asset.key,
                    source_id=str(n.asset.source_id or ""),
                    source_key=n.source_key,
                    depth=n.depth,
                    direction=_DIRECTION_TO_PROTO[n.direction],
                )
                for n in result.nodes
            ],
            edges=[
                pb.LineageEdge(
                    asset_id=str(e.asset_id), upstream_asset_id=str(e.upstream_asset_id), param_name=e.param_name
                )
                for e in result.edges
            ],
        )

    async def SetAssetMaterializable(
        self, request: pb.SetAssetMaterializableRequest, context: Any
    ) -> pb.SetAssetMaterializableResponse:
        identity = require_role(current_identity(), "editor")
        asset_id = parse_id(request.asset_id, "asset_id")
        async with unit_of_work(self.sessions) as db:
            asset = await service.update(db, identity, self.catalog, asset_id, materializable=request.materializable)
            converted = await self._with_source_keys(db, identity, [asset])
        return pb.SetAssetMaterializableResponse(asset=converted[0])
