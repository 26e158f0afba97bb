"""pipelines.v1 ListJobs, TriggerRun, TriggerBackfill, SetJobEnabled (thin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member, Role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..backfills.service import read as read_backfill
from ..backfills.servicer import backfill_to_proto
from ..grpc_base import ServicerBase, parse_date, parse_id, rpc, timestamp
from ..runs.service import read as read_run
from ..runs.servicer import run_to_proto
from . import service
from .schemas import JobRead


def job_to_proto(job: JobRead) -> pb.Job:
    return pb.Job(
        id=str(job.id),
        name=job.name,
        cron=job.cron,
        tags=job.tags,
        enabled=job.enabled,
        partitioned=job.partitioned,
        backfill_days=job.backfill_days,
        source_ids=[str(s) for s in job.source_ids],
        asset_ids=[str(a) for a in job.asset_ids],
        last_run_at=timestamp(job.last_run_at),
        next_run_at=timestamp(job.next_run_at),
        created_at=timestamp(job.created_at),
    )


class JobsServicer(ServicerBase):
    @rpc(Role.VIEWER)
    async def ListJobs(self, request: pb.ListJobsRequest, caller: Member, db: AsyncSession) -> pb.ListJobsResponse:
        jobs = await service.list_jobs(db, caller)
        return pb.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs])

    @rpc(Role.EDITOR)
    async def TriggerRun(
        self, request: pb.TriggerRunRequest, caller: Member, db: AsyncSession
    ) -> pb.TriggerRunResponse:
        job_id = parse_id(request.job_id, "job_id")
        partition = parse_date(request.partition_date, "partition_date") if request.HasField("partition_date") else None
        run = read_run(await service.trigger_run(db, caller, job_id, partition))
        return pb.TriggerRunResponse(run=run_to_proto(run))

    @rpc(Role.EDITOR)
    async def TriggerBackfill(
        self, request: pb.TriggerBackfillRequest, caller: Member, db: AsyncSession
    ) -> pb.TriggerBackfillResponse:
        job_id = parse_id(request.job_id, "job_id")
        start = parse_date(request.start_date, "start_date")
        end = parse_date(request.end_date, "end_date")
        backfill = await service.trigger_backfill(
            db,
            caller,
            job_id,
            start_date=start,
            end_date=end,
            concurrency=request.concurrency if request.HasField("concurrency") else None,
            fail_fast=request.fail_fast,
        )
        return pb.TriggerBackfillResponse(backfill=backfill_to_proto(read_backfill(backfill)))

    @rpc(Role.EDITOR)
    async def SetJobEnabled(
        self, request: pb.SetJobEnabledRequest, caller: Member, db: AsyncSession
    ) -> pb.SetJobEnabledResponse:
        job_id = parse_id(request.job_id, "job_id")
        job = await service.set_enabled(db, caller, job_id, request.enabled)
        return pb.SetJobEnabledResponse(job=job_to_proto(job))
