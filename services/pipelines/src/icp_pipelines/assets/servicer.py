"""pipelines.v1 ListAssets, ListDependencies, GetLineage, SetAssetMaterializable (thin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, optional_id, parse_id, rpc, struct, timestamp
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
    async def _with_source_keys(self, db: AsyncSession, caller: Member, assets: list[AssetRead]) -> list[pb.Asset]:
        keys = await service.source_keys(db, caller, [a.id for a in assets])
        return [asset_to_proto(a, keys.get(a.id, "")) for a in assets]

    @rpc(Role.VIEWER)
    async def ListAssets(
        self, request: pb.ListAssetsRequest, caller: Member, db: AsyncSession
    ) -> pb.ListAssetsResponse:
        source_id = optional_id(request.source_id, "source_id")
        assets = await service.list_assets(db, caller, source_id)
        converted = await self._with_source_keys(db, caller, assets)
        return pb.ListAssetsResponse(assets=converted)

    @rpc(Role.VIEWER)
    async def ListDependencies(
        self, request: pb.ListDependenciesRequest, caller: Member, db: AsyncSession
    ) -> pb.ListDependenciesResponse:
        edges = await service.list_edges(db, caller)
        return pb.ListDependenciesResponse(
            edges=[
                pb.LineageEdge(
                    asset_id=str(e.asset_id), upstream_asset_id=str(e.upstream_asset_id), param_name=e.param_name
                )
                for e in edges
            ]
        )

    @rpc(Role.VIEWER)
    async def GetLineage(
        self, request: pb.GetLineageRequest, caller: Member, db: AsyncSession
    ) -> pb.GetLineageResponse:
        asset_id = parse_id(request.asset_id, "asset_id")
        directions = _DIRECTIONS.get(request.direction, ("upstream", "downstream"))
        result = await service.lineage(db, caller, asset_id, directions=directions, max_depth=request.max_depth)
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

    @rpc(Role.EDITOR)
    async def SetAssetMaterializable(
        self, request: pb.SetAssetMaterializableRequest, caller: Member, db: AsyncSession
    ) -> pb.SetAssetMaterializableResponse:
        asset_id = parse_id(request.asset_id, "asset_id")
        asset = await service.update(db, caller, self.catalog, asset_id, materializable=request.materializable)
        converted = await self._with_source_keys(db, caller, [asset])
        return pb.SetAssetMaterializableResponse(asset=converted[0])
