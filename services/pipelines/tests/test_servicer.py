"""pipelines.v1 over a real grpc.aio channel with the shared interceptor: internal credential,
the caller's identity, the REST routes' roles and tenant scoping, domain errors -> status codes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from icp_common.grpc import internal_token
from icp_common.identity import IDENTITY_HEADER, INTERNAL_TOKEN_HEADER, Identity
from icp_pipelines.rpc import start_grpc
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb
from icp_protos.interloper.pipelines.v1 import pipelines_pb2_grpc

from .conftest import SECRET, SIGNER
from .factories import create_job, create_source, create_standalone_asset


@pytest.fixture(scope="session")
async def grpc_target(settings, sessions, app) -> AsyncIterator[str]:
    server, port = await start_grpc(
        settings, sessions, app.state.catalog, app.state.cipher, SECRET.encode(), SIGNER, port=0
    )
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


@pytest.fixture
async def stub(grpc_target) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        yield pipelines_pb2_grpc.PipelinesServiceStub(channel)


def md(identity: Identity | None = None, *, credential: bool = True) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    if credential:
        items.append((INTERNAL_TOKEN_HEADER, internal_token(SECRET.encode())))
    if identity is not None:
        items.append((IDENTITY_HEADER, SIGNER.sign(identity)))
    return tuple(items)


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details()


async def test_credential_and_identity_are_required(stub, world):
    code, _ = await status_of(stub.ListSources(pb.ListSourcesRequest(), metadata=md(world.viewer, credential=False)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(stub.ListSources(pb.ListSourcesRequest(), metadata=md())) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "Not authenticated",
    )
    assert await status_of(stub.ListJobs(pb.ListJobsRequest(), metadata=md(world.removed))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "Not a member of this organisation",
    )
    assert await status_of(stub.ListJobs(pb.ListJobsRequest(), metadata=md(world.no_org))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No organisation selected",
    )
    job_id = str(uuid.uuid4())
    assert await status_of(stub.TriggerRun(pb.TriggerRunRequest(job_id=job_id), metadata=md(world.viewer))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "Requires editor role or higher",
    )


async def test_catalog(stub, world):
    response = await stub.ListCatalog(pb.ListCatalogRequest(), metadata=md(world.viewer))
    keys = {e.key for e in response.entries}
    assert {"demo_source", "demo_ads_connection", "demo_ping"} <= keys
    sources = await stub.ListCatalog(pb.ListCatalogRequest(kind=pb.COMPONENT_KIND_SOURCE), metadata=md(world.viewer))
    demo = next(e for e in sources.entries if e.key == "demo_source")
    assert demo.kind == pb.COMPONENT_KIND_SOURCE and demo.resources == {"config": "demo_config"}
    events = next(a for a in demo.assets if a.key == "events")
    assert events.partitioning.column == "date" and events.HasField("partitioning")
    users = next(a for a in demo.assets if a.key == "users")
    assert not users.HasField("partitioning")
    assert demo.config_schema["properties"]["dataset"]["default"] == "demo_source"


async def test_sources_assets_lineage(stub, clients, world):
    upstream = await create_source(clients.editor, name="Up", asset_keys=["users"])
    source = await create_source(
        clients.editor, key="demo_ads", name="Ads", cross_deps={"campaigns": {"people": upstream["assets"][0]["id"]}}
    )
    await create_source(clients.other_org, name="B")
    listed = await stub.ListSources(pb.ListSourcesRequest(), metadata=md(world.viewer))
    assert [s.id for s in listed.sources] == [upstream["id"], source["id"]]
    assets = await stub.ListAssets(pb.ListAssetsRequest(source_id=source["id"]), metadata=md(world.viewer))
    assert [(a.key, a.source_key) for a in assets.assets] == [("campaigns", "demo_ads")]
    campaigns = assets.assets[0].id
    lineage = await stub.GetLineage(pb.GetLineageRequest(asset_id=campaigns), metadata=md(world.viewer))
    assert lineage.asset.id == campaigns
    assert [(n.asset_key, n.depth, n.direction, n.source_key) for n in lineage.nodes] == [
        ("users", 1, pb.LINEAGE_DIRECTION_UPSTREAM, "demo_source")
    ]
    assert [(e.asset_id, e.upstream_asset_id, e.param_name) for e in lineage.edges] == [
        (campaigns, upstream["assets"][0]["id"], "people")
    ]
    down = await stub.GetLineage(
        pb.GetLineageRequest(asset_id=upstream["assets"][0]["id"], direction=pb.LINEAGE_DIRECTION_DOWNSTREAM),
        metadata=md(world.viewer),
    )
    assert [n.asset_id for n in down.nodes] == [campaigns]
    updated = await stub.SetAssetMaterializable(
        pb.SetAssetMaterializableRequest(asset_id=campaigns, materializable=False), metadata=md(world.editor)
    )
    assert updated.asset.materializable is False
    # another organisation sees none of it
    assert await status_of(stub.GetLineage(pb.GetLineageRequest(asset_id=campaigns), metadata=md(world.other))) == (
        grpc.StatusCode.NOT_FOUND,
        f"Asset {campaigns} not found",
    )
    code, _ = await status_of(
        stub.SetAssetMaterializable(
            pb.SetAssetMaterializableRequest(asset_id=campaigns, materializable=True), metadata=md(world.other)
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = await status_of(stub.GetLineage(pb.GetLineageRequest(asset_id="nope"), metadata=md(world.viewer)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert len((await stub.ListSources(pb.ListSourcesRequest(), metadata=md(world.other))).sources) == 1


async def test_jobs_runs_backfills(stub, clients, world):
    asset = await create_standalone_asset(clients.editor)
    job = await create_job(clients.editor, asset_ids=[asset["id"]])
    jobs = await stub.ListJobs(pb.ListJobsRequest(), metadata=md(world.viewer))
    assert [(j.id, j.asset_ids, j.HasField("backfill_days")) for j in jobs.jobs] == [(job["id"], [asset["id"]], False)]
    disabled = await stub.SetJobEnabled(
        pb.SetJobEnabledRequest(job_id=job["id"], enabled=False), metadata=md(world.editor)
    )
    assert disabled.job.enabled is False and not disabled.job.HasField("next_run_at")

    run = await stub.TriggerRun(
        pb.TriggerRunRequest(job_id=job["id"], partition_date="2024-01-02"), metadata=md(world.editor)
    )
    assert (run.run.status, run.run.partition_date, run.run.job_id) == (pb.RUN_STATUS_QUEUED, "2024-01-02", job["id"])
    backfill = await stub.TriggerBackfill(
        pb.TriggerBackfillRequest(job_id=job["id"], start_date="2024-01-01", end_date="2024-01-03", concurrency=2),
        metadata=md(world.editor),
    )
    assert (backfill.backfill.partitions, backfill.backfill.status) == (3, pb.BACKFILL_STATUS_RUNNING)
    runs = await stub.ListRuns(pb.ListRunsRequest(backfill_id=backfill.backfill.id), metadata=md(world.viewer))
    assert sorted(r.status for r in runs.runs) == [pb.RUN_STATUS_QUEUED, pb.RUN_STATUS_QUEUED, pb.RUN_STATUS_PENDING]
    page = await stub.ListRuns(pb.ListRunsRequest(limit=2), metadata=md(world.viewer))
    assert len(page.runs) == 2
    pending = await stub.ListRuns(pb.ListRunsRequest(status=pb.RUN_STATUS_PENDING), metadata=md(world.viewer))
    assert len(pending.runs) == 1
    detail = await stub.GetRun(pb.GetRunRequest(run_id=run.run.id), metadata=md(world.viewer))
    assert detail.run.id == run.run.id and list(detail.events) == [] and list(detail.asset_executions) == []

    for call, expected in [
        (
            stub.TriggerBackfill(
                pb.TriggerBackfillRequest(job_id=job["id"], start_date="2024-01-03", end_date="2024-01-01"),
                metadata=md(world.editor),
            ),
            (grpc.StatusCode.INVALID_ARGUMENT, "end_date 2024-01-01 is before start_date 2024-01-03"),
        ),
        (
            stub.TriggerBackfill(
                pb.TriggerBackfillRequest(
                    job_id=job["id"], start_date="2024-01-01", end_date="2024-01-01", concurrency=0
                ),
                metadata=md(world.editor),
            ),
            (grpc.StatusCode.INVALID_ARGUMENT, "concurrency must be at least 1"),
        ),
        (
            stub.ListRuns(pb.ListRunsRequest(limit=-1), metadata=md(world.viewer)),
            (grpc.StatusCode.INVALID_ARGUMENT, "limit and offset must not be negative"),
        ),
        (
            stub.TriggerRun(pb.TriggerRunRequest(job_id=job["id"]), metadata=md(world.other)),
            (grpc.StatusCode.NOT_FOUND, f"Job {job['id']} not found"),
        ),
        (
            stub.SetJobEnabled(pb.SetJobEnabledRequest(job_id=job["id"], enabled=True), metadata=md(world.other)),
            (grpc.StatusCode.NOT_FOUND, f"Job {job['id']} not found"),
        ),
        (
            stub.GetRun(pb.GetRunRequest(run_id=run.run.id), metadata=md(world.other)),
            (grpc.StatusCode.NOT_FOUND, f"Run {run.run.id} not found"),
        ),
        (
            stub.TriggerRun(pb.TriggerRunRequest(job_id=job["id"], partition_date="nope"), metadata=md(world.editor)),
            (grpc.StatusCode.INVALID_ARGUMENT, "partition_date is not a date (YYYY-MM-DD): 'nope'"),
        ),
    ]:
        assert await status_of(call) == expected
    assert list((await stub.ListRuns(pb.ListRunsRequest(), metadata=md(world.other))).runs) == []


async def test_an_assertion_with_ids_that_are_not_uuids_is_unauthenticated(stub, world):
    """`rpc` parses the caller as the REST routes do: ids that are not UUIDs are refused, not a crash."""
    for changes in ({"org_id": "not-an-org"}, {"user_id": "u1"}):
        forged = Identity(**{**world.editor.to_dict(), **changes})
        for call in (
            stub.ListJobs(pb.ListJobsRequest(), metadata=md(forged)),
            stub.TriggerRun(pb.TriggerRunRequest(job_id=str(uuid.uuid4())), metadata=md(forged)),
        ):
            assert await status_of(call) == (grpc.StatusCode.UNAUTHENTICATED, "Malformed caller identity")
