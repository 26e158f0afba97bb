"""pipelines.v1 ListBackfills (thin) and the conversion of backfills (also used by JobsServicer.TriggerBackfill)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, rpc, text, timestamp
from ..runs.status import BackfillStatus
from . import service
from .schemas import BackfillRead

STATUS_TO_PROTO: dict[str, pb.BackfillStatus.ValueType] = {
    BackfillStatus.QUEUED: pb.BACKFILL_STATUS_QUEUED,
    BackfillStatus.RUNNING: pb.BACKFILL_STATUS_RUNNING,
    BackfillStatus.SUCCESS: pb.BACKFILL_STATUS_SUCCESS,
    BackfillStatus.FAILED: pb.BACKFILL_STATUS_FAILED,
}


def backfill_to_proto(backfill: BackfillRead) -> pb.Backfill:
    return pb.Backfill(
        id=str(backfill.id),
        job_id=text(backfill.job_id),
        status=STATUS_TO_PROTO.get(backfill.status, pb.BACKFILL_STATUS_UNSPECIFIED),
        start_date=backfill.start_date.isoformat(),
        end_date=backfill.end_date.isoformat(),
        concurrency=backfill.concurrency,
        fail_fast=backfill.fail_fast,
        partitions=backfill.partitions,
        started_at=timestamp(backfill.started_at),
        completed_at=timestamp(backfill.completed_at),
        created_at=timestamp(backfill.created_at),
    )


class BackfillsServicer(ServicerBase):
    @rpc(Role.VIEWER)
    async def ListBackfills(
        self, request: pb.ListBackfillsRequest, caller: Member, db: AsyncSession
    ) -> pb.ListBackfillsResponse:
        backfills = await service.list_backfills(db, caller, active_only=request.active_only)
        return pb.ListBackfillsResponse(backfills=[backfill_to_proto(b) for b in backfills])
