"""The tools against the real pipelines service over gRPC, acting as a given user: results,
tenant scoping, roles, and errors reported as results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from google.protobuf import struct_pb2

from icp_agent.assistant.pipelines import PipelinesClient
from icp_agent.assistant.tools.actions import ActionTools
from icp_agent.assistant.tools.analytics import AnalyticsTools
from icp_agent.assistant.tools.catalog import CatalogTools, field_type
from icp_agent.assistant.tools.lineage import LineageTools
from icp_agent.assistant.tools.operations import OperationsTools
from icp_agent.assistant.turn import ChatTurn, chat_turn
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .conftest import SECRET, SIGNER, create_pipeline, runs_of


@pytest.fixture
async def pipelines(pipelines_service) -> AsyncIterator[PipelinesClient]:
    client = PipelinesClient(pipelines_service.grpc_target, SECRET.encode(), SIGNER, timeout=10)
    yield client
    await client.close()


def as_user(identity):
    return chat_turn(ChatTurn(identity=identity, session_id="test", message="test"))


@pytest.fixture
async def lineage_world(pipelines_as, world) -> dict[str, Any]:
    editor = pipelines_as(world.editor)
    demo = (await editor.post("/api/sources/", json={"key": "demo_source", "name": "Demo"})).json()
    users = next(a for a in demo["assets"] if a["key"] == "users")
    r = await editor.post(
        "/api/sources/",
        json={"key": "demo_ads", "name": "Ads", "cross_deps": {"campaigns": {"people": users["id"]}}},
    )
    assert r.status_code == 200, r.text
    ads = r.json()
    return {"demo": demo, "ads": ads, "users": users["id"], "campaigns": ads["assets"][0]["id"]}


async def test_catalog_tools(pipelines, pipelines_as, world):
    editor = pipelines_as(world.editor)
    await editor.post("/api/sources/", json={"key": "demo_source", "name": "Demo"})
    destination = (await editor.post("/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV"})).json()
    tools = CatalogTools(pipelines)
    with as_user(world.viewer):
        listed = await tools.list_sources()
        assert listed["status"] == "success" and listed["configured_count"] == 1
        configured = {s["key"]: s["configured"] for s in listed["sources"]}
        assert configured == {"demo_source": True, "demo_ads": False, "demo_live": False}  # the whole demo catalog

        detail = await tools.get_source_detail("demo_source")
        assert detail["status"] == "success"
        assets = {a["key"]: a for a in detail["source"]["assets"]}
        assert assets["events"]["partitioning"]["column"] == "date"
        assert assets["daily_summary"]["requires"] == {"events": "demo_source.events"}
        assert detail["source"]["config_schema"]["properties"]["region"]["default"] == "eu"

        schema = await tools.get_asset_schema("demo_source", "daily_summary")
        assert schema["qualified_key"] == "demo_source.daily_summary" and schema["tags"] == ["Report"]
        assert (await tools.get_source_detail("nope"))["code"] == "not_found"
        missing = await tools.get_asset_schema("demo_source", "nope")
        assert missing["status"] == "error" and "events, daily_summary, users, user_report" in missing["error"]
        assert (await tools.search_fields("  "))["status"] == "error"
        assert (await tools.search_fields("date"))["match_count"] == 0  # the demo assets declare no schema

        destinations = await tools.list_destinations()
        assert [d["id"] for d in destinations["destinations"]] == [destination["id"]]
    with as_user(world.other):
        assert (await tools.list_destinations())["count"] == 0
        assert (await tools.list_sources())["configured_count"] == 0


class CannedPipelines:
    """Only for the schema logic below: answers ListCatalog with a hand-made catalog."""

    class Stub:
        ListCatalog = "ListCatalog"

    stub = Stub()

    def __init__(self, response: pb.ListCatalogResponse) -> None:
        self.response = response

    async def call(self, rpc: Any, request: Any) -> Any:
        assert rpc == "ListCatalog"
        return self.response


def catalog_with_schemas() -> pb.ListCatalogResponse:
    def asset(key: str, props: dict[str, Any]) -> pb.CatalogEntry:
        schema = struct_pb2.Struct()
        schema.update({"type": "object", "properties": props})
        return pb.CatalogEntry(kind=pb.COMPONENT_KIND_ASSET, key=key, source_key="shop", asset_schema=schema)

    orders = asset(
        "orders",
        {
            "email": {"type": "string", "description": "Buyer e-mail"},
            "amount": {"type": "number"},
            "day": {"type": "string", "format": "date"},
        },
    )
    refunds = asset(
        "refunds",
        {
            "email": {"type": ["string", "null"]},
            "amount": {"type": "number"},
            "reason": {"anyOf": [{"type": "string"}]},
        },
    )
    return pb.ListCatalogResponse(
        entries=[pb.CatalogEntry(kind=pb.COMPONENT_KIND_SOURCE, key="shop", name="Shop", assets=[orders, refunds])]
    )


async def test_search_and_compare_schemas():
    tools = CatalogTools(CannedPipelines(catalog_with_schemas()))  # type: ignore[arg-type]
    found = await tools.search_fields("E-MAIL")
    assert [(m["qualified_key"], m["field_name"]) for m in found["matches"]] == [("shop.orders", "email")]
    found = await tools.search_fields("amount")
    assert found["match_count"] == 2
    compared = await tools.compare_schemas("shop", "orders", "shop", "refunds")
    assert compared["status"] == "success"
    assert compared["shared_fields"] == [  # by name: a Struct does not keep the declared order
        {"field": "amount", "type_a": "number", "type_b": "number", "type_match": True},
        {"field": "email", "type_a": "string", "type_b": "string|null", "type_match": False},
    ]
    assert (compared["only_in_a"], compared["only_in_b"]) == (["day"], ["reason"])
    assert field_type({"properties": {}}) == "object" and field_type(None) == "unknown"


async def test_lineage_tools(pipelines, lineage_world, world):
    tools = LineageTools(pipelines)
    users, campaigns = lineage_world["users"], lineage_world["campaigns"]
    with as_user(world.viewer):
        up = await tools.get_upstream(campaigns)
        assert up["asset_key"] == "demo_ads.campaigns"
        assert [(u["upstream_asset_id"], u["param_name"], u["qualified_key"]) for u in up["upstream"]] == [
            (users, "people", "demo_source.users")
        ]
        down = await tools.get_downstream(users)
        assert sorted(d["qualified_key"] for d in down["downstream"]) == [
            "demo_ads.campaigns",
            "demo_source.user_report",
        ]

        full = await tools.get_full_lineage(campaigns, "upstream")
        assert full["lineage_count"] == 1 and full["lineage"][0]["depth"] == 1
        assert (await tools.get_full_lineage(campaigns, "sideways"))["status"] == "error"

        impact = await tools.impact_analysis(users)
        assert impact["total_affected"] == 2
        assert {k: [n["asset_key"] for n in v] for k, v in impact["by_source"].items()} == {
            "demo_ads": ["campaigns"],
            "demo_source": ["user_report"],
        }
        assert sorted(n["asset_key"] for n in impact["leaf_outputs"]) == ["campaigns", "user_report"]

        crossing = await tools.cross_source_dependencies()
        assert crossing["cross_source_count"] == 1
        assert crossing["dependencies"][0] | {} == {
            "downstream_asset_id": campaigns,
            "downstream": "demo_ads.campaigns",
            "upstream_asset_id": users,
            "upstream": "demo_source.users",
            "param_name": "people",
        }
        bad = await tools.get_upstream("not-a-uuid")
        assert (bad["status"], bad["code"]) == ("error", "invalid_argument")
    with as_user(world.other):
        foreign = await tools.get_upstream(campaigns)
        assert foreign == {"status": "error", "error": f"Asset {campaigns} not found", "code": "not_found"}
        assert (await tools.cross_source_dependencies())["cross_source_count"] == 0


async def test_operations_and_analytics_tools(pipelines, pipelines_as, world):
    editor = pipelines_as(world.editor)
    pipeline = await create_pipeline(editor)
    job_id = pipeline.job["id"]
    run = (await editor.post(f"/api/jobs/{job_id}/run")).json()
    r = await editor.post(f"/api/jobs/{job_id}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-03"})
    backfill = r.json()
    ops, analytics = OperationsTools(pipelines), AnalyticsTools(pipelines)
    with as_user(world.viewer):
        jobs = await ops.list_jobs()
        assert [(j["id"], j["name"], j["cron"], j["enabled"]) for j in jobs["jobs"]] == [
            (job_id, "Nightly", "0 3 * * *", True)
        ]
        recent = await ops.list_recent_runs(job_id=job_id, limit=50)
        assert recent["count"] == 4 and run["run_id"] in [r["id"] for r in recent["runs"]]
        assert (await ops.list_recent_runs(status="pending"))["count"] == 2  # backfill runs past concurrency 1
        assert (await ops.list_recent_runs(status="exploded"))["status"] == "error"
        assert (await ops.list_recent_runs(limit=0))["status"] == "error"

        detail = await ops.get_run_detail(run["run_id"])
        assert detail["run"]["status"] == "queued" and detail["events"] == [] and detail["errors"] == []
        assert (await ops.list_failures())["count"] == 0

        health = await ops.get_job_health(job_id)
        assert health["job"]["id"] == job_id
        assert health["health"]["total_recent_runs"] == 4 and health["health"]["success_rate"] is None
        assert health["health"]["by_status"] == {"queued": 2, "pending": 2}

        backfills = await ops.list_backfills()
        assert [b["id"] for b in backfills["backfills"]] == [backfill["backfill_id"]]
        assert backfills["backfills"][0]["partitions"] == 3

        summary = await analytics.run_history_summary(job_id=job_id, days=7)
        assert summary["total_runs"] == 4 and summary["job_name"] == "Nightly"
        assert (await analytics.run_history_summary())["total_runs"] == 4
        coverage = await analytics.partition_coverage(job_id, "2024-01-01", "2024-01-05")
        assert (coverage["total_days"], coverage["covered_days"], coverage["coverage_percent"]) == (5, 0, 0.0)
        assert coverage["missing_dates"][0] == "2024-01-01" and len(coverage["missing_dates"]) == 5
        reversed_range = await analytics.partition_coverage(job_id, "2024-01-05", "2024-01-01")
        assert reversed_range["error"] == "end_date 2024-01-01 is before start_date 2024-01-05"
        long_ago = (date.today() - timedelta(days=4000)).isoformat()
        assert "too long" in (await analytics.partition_coverage(job_id, long_ago, date.today().isoformat()))["error"]
        fresh = await analytics.freshness_check()
        assert fresh["total_jobs"] == 1 and fresh["stale_count"] == 1
        assert fresh["jobs"][0]["last_success_at"] is None

    with as_user(world.other):
        for result in [
            await ops.get_job_health(job_id),
            await ops.list_recent_runs(job_id=job_id),
            await analytics.partition_coverage(job_id, "2024-01-01", "2024-01-02"),
            await analytics.run_history_summary(job_id=job_id),
        ]:
            assert result == {"status": "error", "error": f"Job {job_id} not found", "code": "not_found"}
        assert (await ops.get_run_detail(run["run_id"]))["code"] == "not_found"
        assert (await ops.list_recent_runs())["count"] == 0


async def test_action_tools(pipelines, pipelines_as, world):
    editor = pipelines_as(world.editor)
    pipeline = await create_pipeline(editor)
    job_id, asset_id = pipeline.job["id"], pipeline.asset["id"]
    tools = ActionTools(pipelines)
    denied = {"status": "error", "error": "Requires editor role or higher", "code": "permission_denied"}
    with as_user(world.viewer):
        assert await tools.trigger_run(job_id) == denied
        assert await tools.trigger_backfill(job_id, "2024-01-01", "2024-01-02") == denied
        assert await tools.toggle_job(job_id, False) == denied
        assert await tools.toggle_asset(asset_id, False) == denied
    with as_user(world.other):
        assert (await tools.trigger_run(job_id))["code"] == "not_found"
        assert (await tools.toggle_asset(asset_id, False))["code"] == "not_found"
    assert await runs_of(editor) == []

    with as_user(world.editor):
        run = await tools.trigger_run(job_id, partition_date="2024-02-01")
        assert run["message"] == "Run queued successfully" and run["run"]["partition_date"] == "2024-02-01"
        backfill = await tools.trigger_backfill(job_id, "2024-01-01", "2024-01-03", concurrency=2)
        assert backfill["message"] == "Backfill created successfully" and backfill["backfill"]["partitions"] == 3
        assert (await tools.trigger_backfill(job_id, "2024-01-03", "2024-01-01"))["code"] == "invalid_argument"
        assert (await tools.trigger_run(job_id, partition_date="yesterday"))["status"] == "error"
        assert (await tools.trigger_run("nope"))["error"] == "job_id must be a UUID, got 'nope'"
        toggled = await tools.toggle_job(job_id, False)
        assert toggled["message"] == "Job 'Nightly' disabled" and toggled["job"]["enabled"] is False
        toggled = await tools.toggle_asset(asset_id, False)
        assert toggled["message"] == "Asset 'demo_ping' materialization disabled"
    runs = await runs_of(editor)
    assert run["run_id"] in [r["id"] for r in runs] and len(runs) == 4
    assert (await editor.get(f"/api/jobs/{job_id}")).json()["enabled"] is False


async def test_unavailable_pipelines_and_unexpected_errors(world):
    from icp_stack.ports import free_port

    dead = PipelinesClient(f"127.0.0.1:{free_port()}", SECRET.encode(), SIGNER, timeout=1)
    try:
        with as_user(world.editor):
            result = await OperationsTools(dead).list_jobs()
        assert result["status"] == "error" and result["code"] == "unavailable"
    finally:
        await dead.close()

    class Broken:
        stub = CannedPipelines.Stub()

        async def call(self, rpc: Any, request: Any) -> Any:
            raise RuntimeError("boom")

    result = await CatalogTools(Broken()).list_destinations()  # type: ignore[arg-type]
    assert result == {"status": "error", "error": "The tool failed unexpectedly", "code": "internal"}
