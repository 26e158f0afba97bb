"""pipelines.v1 ListJobs, TriggerRun, TriggerBackfill, SetJobEnabled (thin)."""

from __future__ import annotations

from typing import Any

from icp_common.db import unit_of_work
from icp_common.grpc import current_identity
from icp_common.identity import require_role
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..backfills.service import read as read_backfill
from ..backfills.servicer import backfill_to_proto
from ..grpc_base import ServicerBase, parse_date, parse_id, timestamp
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
    async def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        identity = require_role(current_identity(), "viewer")
        async with unit_of_work(self.sessions) as db:
            jobs = await service.list_jobs(db, identity)
        return pb.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs])

    async def TriggerRun(self, request: pb.TriggerRunRequest, context: Any) -> pb.TriggerRunResponse:
        identity = require_role(current_identity(), "editor")
        job_id = parse_id(request.job_id, "job_id")
        partition = parse_date(request.partition_date, "partition_date") if request.HasField("partition_date") else None
        async with unit_of_work(self.sessions) as db:
            run = read_run(await service.trigger_run(db, identity, job_id, partition))
        return pb.TriggerRunResponse(run=run_to_proto(run))

    async def TriggerBackfill(self, request: pb.TriggerBackfillRequest, context: Any) -> pb.TriggerBackfillResponse:
        identity = require_role(current_identity(), "editor")
        job_id = parse_id(request.job_id, "job_id")
        start = parse_date(request.start_date, "start_date")
        end = parse_date(request.end_date, "end_date")
        concurrency = request.concurrency if request.HasField("concurrency") else 1
        async with unit_of_work(self.sessions) as db:
            backfill = read_backfill(
                await service.trigger_backfill(
                    db,
                    identity,
                    job_id,
                    start_date=start,
                    end_date=end,
                    concurrency=concurrency,
                    fail_fast=request.fail_fast,
                )
            )
        return pb.TriggerBackfillResponse(backfill=backfill_to_proto(backfill))

    async def SetJobEnabled(self, request: pb.SetJobEnabledRequest, context: Any) -> pb.SetJobEnabledResponse:
        identity = require_role(current_identity(), "editor")
        job_id = parse_id(request.job_id, "job_id")
        async with unit_of_work(self.sessions) as db:
            job = await service.set_enabled(db, identity, job_id, request.enabled)
        return pb.SetJobEnabledResponse(job=job_to_proto(job))
