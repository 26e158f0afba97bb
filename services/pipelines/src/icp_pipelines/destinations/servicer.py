"""pipelines.v1 ListDestinations (thin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, rpc, struct, timestamp
from . import service
from .schemas import DestinationRead


def destination_to_proto(destination: DestinationRead) -> pb.Destination:
    return pb.Destination(
        id=str(destination.id),
        key=destination.key,
        name=destination.name or "",
        config=struct(destination.config),
        resources={slot: str(r) for slot, r in destination.resources.items()},
        created_at=timestamp(destination.created_at),
    )


class DestinationsServicer(ServicerBase):
    @rpc(Role.VIEWER)
    async def ListDestinations(
        self, request: pb.ListDestinationsRequest, caller: Member, db: AsyncSession
    ) -> pb.ListDestinationsResponse:
        destinations = await service.list_destinations(db, caller)
        return pb.ListDestinationsResponse(destinations=[destination_to_proto(d) for d in destinations])
