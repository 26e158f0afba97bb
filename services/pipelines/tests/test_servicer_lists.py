"""pipelines.v1 ListDestinations, ListDependencies, ListBackfills (used by the agent's tools)."""

from __future__ import annotations

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .factories import create_destination, create_job, create_source, create_standalone_asset
from .test_servicer import grpc_target, md, stub  # noqa: F401  (fixtures)


async def test_list_destinations(stub, clients, world):  # noqa: F811
    destination = await create_destination(clients.editor)
    await create_destination(clients.other_org, name="Theirs")
    listed = await stub.ListDestinations(pb.ListDestinationsRequest(), metadata=md(world.viewer))
    assert [(d.id, d.key, d.name) for d in listed.destinations] == [(destination["id"], "demo_csv_destination", "CSV")]
    assert listed.destinations[0].config["base_path"] == "out"


async def test_list_dependencies(stub, clients, world):  # noqa: F811
    upstream = await create_source(clients.editor, name="Up", asset_keys=["users"])
    source = await create_source(
        clients.editor, key="demo_ads", name="Ads", cross_deps={"campaigns": {"people": upstream["assets"][0]["id"]}}
    )
    listed = await stub.ListDependencies(pb.ListDependenciesRequest(), metadata=md(world.viewer))
    assert [(e.asset_id, e.upstream_asset_id, e.param_name) for e in listed.edges] == [
        (source["assets"][0]["id"], upstream["assets"][0]["id"], "people")
    ]
    other = await stub.ListDependencies(pb.ListDependenciesRequest(), metadata=md(world.other))
    assert list(other.edges) == []


async def test_list_backfills(stub, clients, world):  # noqa: F811
    asset = await create_standalone_asset(clients.editor)
    job = await create_job(clients.editor, asset_ids=[asset["id"]])
    created = await stub.TriggerBackfill(
        pb.TriggerBackfillRequest(job_id=job["id"], start_date="2024-01-01", end_date="2024-01-02"),
        metadata=md(world.editor),
    )
    listed = await stub.ListBackfills(pb.ListBackfillsRequest(), metadata=md(world.viewer))
    assert [b.id for b in listed.backfills] == [created.backfill.id]
    active = await stub.ListBackfills(pb.ListBackfillsRequest(active_only=True), metadata=md(world.viewer))
    assert [b.id for b in active.backfills] == [created.backfill.id]
    assert list((await stub.ListBackfills(pb.ListBackfillsRequest(), metadata=md(world.other))).backfills) == []
