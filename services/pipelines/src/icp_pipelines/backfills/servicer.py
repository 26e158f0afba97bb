"""pipelines.v1 conversion of backfills (served through JobsServicer.TriggerBackfill)."""

from __future__ import annotations

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import text, timestamp
from .schemas import BackfillRead

STATUS_TO_PROTO = {
    "queued": pb.BACKFILL_STATUS_QUEUED,
    "running": pb.BACKFILL_STATUS_RUNNING,
    "success": pb.BACKFILL_STATUS_SUCCESS,
    "failed": pb.BACKFILL_STATUS_FAILED,
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
