"""OperationsAgent's tools: runs, failures, job health, jobs and backfills."""

from __future__ import annotations

import asyncio
from typing import Any

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .. import convert
from ..pipelines import ToolError
from .base import Toolbox, ToolFn, ToolResult, bounded, parse_uuid, tool

HEALTH_WINDOW = 20
FAILURE_DETAIL_CONCURRENCY = 8
FAILURE_EVENTS_LIMIT = 1000


def error_events(events: list[pb.RunEvent]) -> list[dict[str, Any]]:
    return [
        {
            "asset_key": e.asset_key or None,
            "event_type": e.event_type,
            "error": e.error,
            "timestamp": convert.iso(e, "timestamp"),
        }
        for e in events
        if e.error
    ]


def run_stats(runs: list[pb.Run]) -> dict[str, Any]:
    """Counts, success rate over finished runs, average duration over runs with both times."""
    by_status: dict[str, int] = {}
    for run in runs:
        name = convert.RUN_STATUS.get(run.status, "unknown")
        by_status[name] = by_status.get(name, 0) + 1
    success, failed = by_status.get("success", 0), by_status.get("failed", 0)
    finished = success + failed + by_status.get("canceled", 0)
    durations = [d for d in (convert.duration_seconds(r) for r in runs) if d is not None]
    return {
        "by_status": by_status,
        "success_count": success,
        "failed_count": failed,
        "success_rate": round(100.0 * success / finished, 1) if finished else None,
        "avg_duration_seconds": round(sum(durations) / len(durations), 3) if durations else None,
    }


class OperationsTools(Toolbox):
    def tools(self) -> list[ToolFn]:
        return [
            self.list_recent_runs,
            self.get_run_detail,
            self.list_failures,
            self.get_job_health,
            self.list_jobs,
            self.list_backfills,
        ]

    async def _jobs(self) -> list[pb.Job]:
        response = await self.pipelines.call(self.pipelines.stub.ListJobs, pb.ListJobsRequest())
        return list(response.jobs)

    async def job(self, job_id: str) -> pb.Job:
        """The organisation's job with this id, or a not-found error (also for other tenants' ids)."""
        wanted = parse_uuid(job_id, "job_id")
        for job in await self._jobs():
            if job.id == wanted:
                return job
        raise ToolError(f"Job {wanted} not found", "not_found")

    async def runs(
        self,
        *,
        job_id: str = "",
        status: convert.RunStatus = pb.RUN_STATUS_UNSPECIFIED,
        limit: int = 50,
        offset: int = 0,
    ) -> list[pb.Run]:
        request = pb.ListRunsRequest(job_id=job_id, status=status, limit=limit, offset=offset)
        response = await self.pipelines.call(self.pipelines.stub.ListRuns, request)
        return list(response.runs)

    @tool
    async def list_recent_runs(
        self, job_id: str | None = None, status: str | None = None, limit: int = 20
    ) -> ToolResult:
        """List the most recent runs, newest first, optionally of one job and/or in one state.

        Args:
          job_id: Only runs of this job (UUID).
          status: Only runs in this state: queued, pending, dispatched, running, success, failed, canceled.
          limit: How many runs (1-100, default 20).
        """
        wanted_status = pb.RUN_STATUS_UNSPECIFIED
        if status:
            if status.strip().lower() not in convert.RUN_STATUS_BY_NAME:
                raise ToolError(f"status must be one of {', '.join(convert.RUN_STATUS_BY_NAME)}")
            wanted_status = convert.RUN_STATUS_BY_NAME[status.strip().lower()]
        if job_id:
            await self.job(job_id)
        runs = await self.runs(
            job_id=parse_uuid(job_id, "job_id") if job_id else "",
            status=wanted_status,
            limit=bounded(limit, "limit", 1, 100),
        )
        return {"count": len(runs), "runs": [convert.run(r) for r in runs]}

    @tool
    async def get_run_detail(self, run_id: str) -> ToolResult:
        """Get one run with its first 100 events (errors included) and the state of each asset.

        Args:
          run_id: Id (UUID) of the run.
        """
        request = pb.GetRunRequest(run_id=parse_uuid(run_id, "run_id"), events_limit=100)
        response = await self.pipelines.call(self.pipelines.stub.GetRun, request)
        events = list(response.events)
        return {
            "run": convert.run(response.run),
            "events": [convert.event(e) for e in events],
            "errors": error_events(events),
            "asset_executions": [convert.execution(x) for x in response.asset_executions],
        }

    @tool
    async def list_failures(self, limit: int = 20) -> ToolResult:
        """List the most recent failed runs with their error messages (which asset failed and why).

        Args:
          limit: How many failed runs (1-50, default 20).
        """
        runs = await self.runs(status=pb.RUN_STATUS_FAILED, limit=bounded(limit, "limit", 1, 50))
        gate = asyncio.Semaphore(FAILURE_DETAIL_CONCURRENCY)

        async def detail(run: pb.Run) -> dict[str, Any]:
            async with gate:
                request = pb.GetRunRequest(run_id=run.id, events_limit=FAILURE_EVENTS_LIMIT)
                response = await self.pipelines.call(self.pipelines.stub.GetRun, request)
            return {"run": convert.run(run), "errors": error_events(list(response.events))}

        failures = await asyncio.gather(*(detail(r) for r in runs))
        return {"count": len(failures), "failures": list(failures)}

    @tool
    async def get_job_health(self, job_id: str) -> ToolResult:
        """Get a job with health statistics over its last 20 runs: success rate, failures, average
        duration, last run and last success.

        Args:
          job_id: Id (UUID) of the job.
        """
        job = await self.job(job_id)
        runs = await self.runs(job_id=job.id, limit=HEALTH_WINDOW)
        last_success = next((r for r in runs if r.status == pb.RUN_STATUS_SUCCESS), None)
        last_failure = next((r for r in runs if r.status == pb.RUN_STATUS_FAILED), None)
        return {
            "job": convert.job(job),
            "health": {
                "total_recent_runs": len(runs),
                **run_stats(runs),
                "last_run": convert.run(runs[0]) if runs else None,
                "last_success_at": convert.iso(last_success, "completed_at") if last_success else None,
                "last_failure_at": convert.iso(last_failure, "completed_at") if last_failure else None,
            },
        }

    @tool
    async def list_jobs(self) -> ToolResult:
        """List the jobs of the organisation: schedule (cron), enabled, partitioning, last and next run."""
        jobs = [convert.job(j) for j in await self._jobs()]
        return {"count": len(jobs), "jobs": jobs}

    @tool
    async def list_backfills(self, active_only: bool = True) -> ToolResult:
        """List backfills (a job run once per day over a date range), newest first.

        Args:
          active_only: Only backfills still queued or running (default true).
        """
        request = pb.ListBackfillsRequest(active_only=bool(active_only))
        response = await self.pipelines.call(self.pipelines.stub.ListBackfills, request)
        backfills = [convert.backfill(b) for b in response.backfills]
        return {"count": len(backfills), "backfills": backfills}
