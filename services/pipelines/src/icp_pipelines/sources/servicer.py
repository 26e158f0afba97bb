"""pipelines.v1 ListSources (thin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, rpc, struct, timestamp
from . import service
from .schemas import SourceRead


def source_to_proto(source: SourceRead) -> pb.Source:
    return pb.Source(
        id=str(source.id),
        key=source.key,
        name=source.name,
        config=struct(source.config),
        resources={slot: str(r) for slot, r in source.resources.items()},
        destination_ids=[str(d) for d in source.destination_ids],
        assets=[pb.SourceAsset(id=str(a.id), key=a.key, materializable=a.materializable) for a in source.assets],
        created_at=timestamp(source.created_at),
    )


class SourcesServicer(ServicerBase):
    @rpc(Role.VIEWER)
    async def ListSources(
        self, request: pb.ListSourcesRequest, caller: Member, db: AsyncSession
    ) -> pb.ListSourcesResponse:
        sources = await service.list_sources(db, caller)
        return pb.ListSourcesResponse(sources=[source_to_proto(s) for s in sources])
