"""ActionAgent's tools: trigger runs and backfills, enable/disable jobs, include/exclude assets.
They need the editor role (checked by the pipelines service for the chatting user) and report
the ids of what they created."""

from __future__ import annotations

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .. import convert
from .base import Toolbox, ToolFn, ToolResult, bounded, parse_date, parse_uuid, tool


class ActionTools(Toolbox):
    def tools(self) -> list[ToolFn]:
        return [self.trigger_run, self.trigger_backfill, self.toggle_job, self.toggle_asset]

    @tool
    async def trigger_run(self, job_id: str, partition_date: str | None = None) -> ToolResult:
        """Queue one run of a job now. Only after the user confirmed.

        Args:
          job_id: Id (UUID) of the job.
          partition_date: Day to run for, YYYY-MM-DD (partitioned jobs); omit for an unpartitioned run.
        """
        request = pb.TriggerRunRequest(job_id=parse_uuid(job_id, "job_id"))
        if partition_date:
            request.partition_date = parse_date(partition_date, "partition_date").isoformat()
        response = await self.pipelines.call(self.pipelines.stub.TriggerRun, request)
        return {"message": "Run queued successfully", "run_id": response.run.id, "run": convert.run(response.run)}

    @tool
    async def trigger_backfill(
        self, job_id: str, start_date: str, end_date: str, concurrency: int = 1, fail_fast: bool = False
    ) -> ToolResult:
        """Create a backfill: run a job once per day from start_date to end_date (inclusive). Only
        after the user confirmed.

        Args:
          job_id: Id (UUID) of the job.
          start_date: First day, YYYY-MM-DD.
          end_date: Last day (inclusive), YYYY-MM-DD.
          concurrency: How many of its runs may execute at once (default 1).
          fail_fast: Cancel the remaining runs after the first failure (default false).
        """
        request = pb.TriggerBackfillRequest(
            job_id=parse_uuid(job_id, "job_id"),
            start_date=parse_date(start_date, "start_date").isoformat(),
            end_date=parse_date(end_date, "end_date").isoformat(),
            concurrency=bounded(concurrency, "concurrency", 1, 1000),
            fail_fast=bool(fail_fast),
        )
        response = await self.pipelines.call(self.pipelines.stub.TriggerBackfill, request)
        return {
            "message": "Backfill created successfully",
            "backfill_id": response.backfill.id,
            "backfill": convert.backfill(response.backfill),
        }

    @tool
    async def toggle_job(self, job_id: str, enabled: bool) -> ToolResult:
        """Enable or disable a job's schedule. Only after the user confirmed.

        Args:
          job_id: Id (UUID) of the job.
          enabled: true to enable the schedule, false to disable it.
        """
        request = pb.SetJobEnabledRequest(job_id=parse_uuid(job_id, "job_id"), enabled=bool(enabled))
        response = await self.pipelines.call(self.pipelines.stub.SetJobEnabled, request)
        state = "enabled" if response.job.enabled else "disabled"
        return {"message": f"Job '{response.job.name}' {state}", "job": convert.job(response.job)}

    @tool
    async def toggle_asset(self, asset_id: str, materializable: bool) -> ToolResult:
        """Include an asset in runs (materializable) or exclude it. Only after the user confirmed.

        Args:
          asset_id: Id (UUID) of the asset.
          materializable: true to include the asset in runs, false to exclude it.
        """
        request = pb.SetAssetMaterializableRequest(
            asset_id=parse_uuid(asset_id, "asset_id"), materializable=bool(materializable)
        )
        response = await self.pipelines.call(self.pipelines.stub.SetAssetMaterializable, request)
        asset = response.asset
        state = "enabled" if asset.materializable else "disabled"
        key = convert.qualified(asset.source_key, asset.key)
        return {"message": f"Asset '{key}' materialization {state}", "asset": convert.asset(asset)}
