"""AnalyticsAgent's tools: run statistics, partition coverage, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .. import convert
from ..pipelines import ToolError
from .base import ToolFn, ToolResult, bounded, parse_date, tool
from .operations import OperationsTools, run_stats

PAGE = 500
MAX_PAGES = 4  # at most 2000 runs read per question
MAX_COVERAGE_DAYS = 3660
STALE_AFTER_HOURS = 24.0


class AnalyticsTools(OperationsTools):
    def tools(self) -> list[ToolFn]:
        return [self.run_history_summary, self.partition_coverage, self.freshness_check]

    async def _runs_until(
        self, *, job_id: str = "", status: convert.RunStatus = pb.RUN_STATUS_UNSPECIFIED, since: datetime | None = None
    ) -> tuple[list[pb.Run], bool]:
        """Newest-first pages of runs until `since` is passed; (runs, truncated)."""
        collected: list[pb.Run] = []
        for page in range(MAX_PAGES):
            runs = await self.runs(job_id=job_id, status=status, limit=PAGE, offset=page * PAGE)
            for run in runs:
                created = convert.when(run, "created_at")
                if since is not None and created is not None and created < since:
                    return collected, False
                collected.append(run)
            if len(runs) < PAGE:
                return collected, False
        return collected, True

    @tool
    async def run_history_summary(self, job_id: str | None = None, days: int = 7) -> ToolResult:
        """Summarise runs over the last N days: total, count per status, success rate and average
        duration, for one job or the whole organisation.

        Args:
          job_id: Only runs of this job (UUID); all jobs when omitted.
          days: Length of the period in days (1-365, default 7).
        """
        period = bounded(days, "days", 1, 365)
        job = await self.job(job_id) if job_id else None
        since = datetime.now(UTC) - timedelta(days=period)
        runs, truncated = await self._runs_until(job_id=job.id if job else "", since=since)
        stats = run_stats(runs)
        return {
            "period_days": period,
            "job_id": job.id if job else None,
            "job_name": job.name if job else None,
            "total_runs": len(runs),
            **stats,
            "truncated": truncated,
        }

    @tool
    async def partition_coverage(self, job_id: str, start_date: str, end_date: str) -> ToolResult:
        """Check which days of a date range a partitioned job has successfully run for, and list the
        missing dates.

        Args:
          job_id: Id (UUID) of the job.
          start_date: First day, YYYY-MM-DD.
          end_date: Last day (inclusive), YYYY-MM-DD.
        """
        start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
        if end < start:
            raise ToolError(f"end_date {end} is before start_date {start}")
        total = (end - start).days + 1
        if total > MAX_COVERAGE_DAYS:
            raise ToolError(f"the range is too long ({total} days; at most {MAX_COVERAGE_DAYS})")
        job = await self.job(job_id)
        runs, truncated = await self._runs_until(job_id=job.id, status=pb.RUN_STATUS_SUCCESS)
        wanted = {(start + timedelta(days=i)).isoformat() for i in range(total)}
        covered = {r.partition_date for r in runs if r.partition_date in wanted}
        missing = sorted(wanted - covered)
        return {
            "job_id": job.id,
            "job_name": job.name,
            "partitioned": job.partitioned,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "total_days": total,
            "covered_days": len(covered),
            "missing_days": len(missing),
            "coverage_percent": round(100.0 * len(covered) / total, 1),
            "missing_dates": missing,
            "truncated": truncated,
        }

    @tool
    async def freshness_check(self) -> ToolResult:
        """For every enabled job, when it last succeeded and whether it is stale (no success in the
        last 24 hours, or never)."""
        jobs = [j for j in await self._jobs() if j.enabled]
        last_success: dict[str, datetime] = {}
        pending = {j.id for j in jobs}
        for page in range(MAX_PAGES):
            if not pending:
                break
            runs = await self.runs(status=pb.RUN_STATUS_SUCCESS, limit=PAGE, offset=page * PAGE)
            for run in runs:
                if run.job_id in pending:
                    done = convert.when(run, "completed_at") or convert.when(run, "created_at")
                    if done is not None:
                        last_success[run.job_id] = done
                        pending.discard(run.job_id)
            if len(runs) < PAGE:
                break
        now = datetime.now(UTC)
        report: list[dict[str, Any]] = []
        for job in jobs:
            done = last_success.get(job.id)
            hours = round((now - done).total_seconds() / 3600, 1) if done else None
            report.append(
                {
                    "job_id": job.id,
                    "name": job.name,
                    "cron": job.cron,
                    "last_success_at": done.isoformat() if done else None,
                    "hours_since_success": hours,
                    "stale": hours is None or hours > STALE_AFTER_HOURS,
                }
            )
        return {"total_jobs": len(report), "stale_count": sum(1 for j in report if j["stale"]), "jobs": report}
