"""pipelines.v1 ListRuns and GetRun (thin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase, optional_id, parse_id, rpc, text, timestamp
from . import service
from .schemas import AssetExecutionRead, EventRead, RunRead
from .status import RunStatus

RUN_STATUS_TO_PROTO: dict[str, pb.RunStatus.ValueType] = {
    RunStatus.QUEUED: pb.RUN_STATUS_QUEUED,
    RunStatus.PENDING: pb.RUN_STATUS_PENDING,
    RunStatus.DISPATCHED: pb.RUN_STATUS_DISPATCHED,
    RunStatus.RUNNING: pb.RUN_STATUS_RUNNING,
    RunStatus.SUCCESS: pb.RUN_STATUS_SUCCESS,
    RunStatus.FAILED: pb.RUN_STATUS_FAILED,
    RunStatus.CANCELED: pb.RUN_STATUS_CANCELED,
}
PROTO_TO_RUN_STATUS = {v: k for k, v in RUN_STATUS_TO_PROTO.items()}
EXECUTION_STATUS_TO_PROTO = {
    "queued": pb.ASSET_EXECUTION_STATUS_QUEUED,
    "running": pb.ASSET_EXECUTION_STATUS_RUNNING,
    "success": pb.ASSET_EXECUTION_STATUS_SUCCESS,
    "failed": pb.ASSET_EXECUTION_STATUS_FAILED,
    "canceled": pb.ASSET_EXECUTION_STATUS_CANCELED,
    "skipped": pb.ASSET_EXECUTION_STATUS_SKIPPED,
}


def run_to_proto(run: RunRead) -> pb.Run:
    return pb.Run(
        id=str(run.id),
        job_id=text(run.job_id),
        backfill_id=text(run.backfill_id),
        partition_date=run.partition_date.isoformat() if run.partition_date else "",
        status=RUN_STATUS_TO_PROTO.get(run.status, pb.RUN_STATUS_UNSPECIFIED),
        started_at=timestamp(run.started_at),
        completed_at=timestamp(run.completed_at),
        created_at=timestamp(run.created_at),
    )


def event_to_proto(event: EventRead, backfill_id: str) -> pb.RunEvent:
    return pb.RunEvent(
        id=str(event.id),
        run_id=text(event.run_id),
        backfill_id=backfill_id,
        event_type=event.event_type,
        asset_id=text(event.asset_id),
        asset_key=text(event.asset_key),
        partition_or_window=text(event.partition_or_window),
        error=text(event.error),
        traceback=text(event.traceback),
        message=text(event.message),
        timestamp=timestamp(event.timestamp),
    )


def execution_to_proto(row: AssetExecutionRead) -> pb.AssetExecution:
    return pb.AssetExecution(
        asset_id=str(row.asset_id),
        asset_key=text(row.asset_key),
        status=EXECUTION_STATUS_TO_PROTO.get(row.status or "", pb.ASSET_EXECUTION_STATUS_UNSPECIFIED),
        started_at=timestamp(row.started_at),
        completed_at=timestamp(row.completed_at),
        created_at=timestamp(row.created_at),
    )


class RunsServicer(ServicerBase):
    @rpc(Role.VIEWER)
    async def ListRuns(self, request: pb.ListRunsRequest, caller: Member, db: AsyncSession) -> pb.ListRunsResponse:
        runs = await service.list_runs(
            db,
            caller,
            job_id=optional_id(request.job_id, "job_id"),
            backfill_id=optional_id(request.backfill_id, "backfill_id"),
            status=PROTO_TO_RUN_STATUS.get(request.status),
            limit=request.limit or service.DEFAULT_LIMIT,  # proto: 0 = the server default
            offset=request.offset,
            cap=True,
        )
        return pb.ListRunsResponse(runs=[run_to_proto(r) for r in runs])

    @rpc(Role.VIEWER)
    async def GetRun(self, request: pb.GetRunRequest, caller: Member, db: AsyncSession) -> pb.GetRunResponse:
        run_id = parse_id(request.run_id, "run_id")
        events = await service.detail_events(db, caller, run_id, request.events_limit or None)
        run = await service.get(db, caller, run_id)
        executions = await service.asset_executions(db, caller, run_id)
        backfill_id = text(run.backfill_id)
        return pb.GetRunResponse(
            run=run_to_proto(run),
            events=[event_to_proto(e, backfill_id) for e in events],
            asset_executions=[execution_to_proto(x) for x in executions],
        )
