"""The run metrics: the queue the scheduler samples, and each ended run's duration by status."""

from __future__ import annotations

from prometheus_client import REGISTRY

from icp_common.metrics import Sampler
from icp_pipelines.execution.events import RunRef
from icp_pipelines.execution.metrics import queue_probe
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs.status import RunStatus


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_queue_and_the_runs_in_flight_are_sampled(db, engine, world):
    sampler = Sampler()
    sampler.add("runs", queue_probe(lambda: engine))
    assert await sampler.sample()
    queued, running = value("icp_pipelines_queued_runs"), value("icp_pipelines_runs_in_flight", status="running")
    async with db() as s:
        run = await lifecycle.queue_run(s, world.org_a, None, None)
    assert await sampler.sample()
    assert value("icp_pipelines_queued_runs") == queued + 1
    assert value("icp_pipelines_oldest_queued_run_age_seconds") > 0
    async with db() as s:
        claimed = await lifecycle.claim_runs(s, "worker-metrics", 1000)
    assert run.id in {r.id for r in claimed}
    assert await sampler.sample()
    assert value("icp_pipelines_queued_runs") == 0
    assert value("icp_pipelines_oldest_queued_run_age_seconds") == 0
    assert value("icp_pipelines_runs_in_flight", status="running") == running + len(claimed)
    assert value("icp_pipelines_oldest_run_in_flight_age_seconds") > 0
    async with db() as s:  # leave nothing in flight for other tests
        for row in claimed:
            await lifecycle.finish_run(s, RunRef.of(row), status=RunStatus.SUCCESS)


async def test_an_ended_run_observes_its_duration_by_status(db, world):
    before = {s: value("icp_pipelines_run_duration_seconds_count", status=s) for s in ("success", "failed")}
    async with db() as s:
        ok = await lifecycle.queue_run(s, world.org_a, None, None)
        bad = await lifecycle.queue_run(s, world.org_a, None, None)
    async with db() as s:
        claimed = {r.id: r for r in await lifecycle.claim_runs(s, "worker-durations", 1000)}
    async with db() as s:
        assert await lifecycle.finish_run(s, RunRef.of(claimed[ok.id]), status=RunStatus.SUCCESS)
        assert await lifecycle.finish_run(s, RunRef.of(claimed[bad.id]), status=RunStatus.FAILED, failure="boom")
        for run_id, row in claimed.items():
            if run_id not in (ok.id, bad.id):
                await lifecycle.finish_run(s, RunRef.of(row), status=RunStatus.SUCCESS)
    after = {s: value("icp_pipelines_run_duration_seconds_count", status=s) for s in ("success", "failed")}
    assert after["failed"] == before["failed"] + 1
    assert after["success"] == before["success"] + len(claimed) - 1
