"""`/api/sources` (spec 2.8): assets from the catalog, intra/cross dependencies, bindings, scoping."""

from __future__ import annotations

import re
import uuid

from ..factories import create_destination, create_resource, create_source

DB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00$")
SOURCE_KEYS = {
    "id",
    "org_id",
    "key",
    "name",
    "config",
    "resources",
    "destinations",
    "destination_ids",
    "assets",
    "created_at",
}


async def test_create_source_with_every_asset_and_intra_dependencies(clients, world):
    source = await create_source(clients.editor, config={"region": "na"})
    assert set(source) == SOURCE_KEYS
    assert source["org_id"] == str(world.org_a)
    assert source["config"] == {"region": "na"}
    assert DB_TIME.match(source["created_at"])
    assert {a["key"] for a in source["assets"]} == {"events", "daily_summary", "users", "user_report"}
    assert all(set(a) == {"id", "key", "materializable"} and a["materializable"] for a in source["assets"])
    ids = {a["key"]: a["id"] for a in source["assets"]}
    deps = (await clients.viewer.get("/api/assets/dependencies")).json()
    assert sorted(deps, key=lambda d: d["asset_id"]) == sorted(
        [
            {"asset_id": ids["daily_summary"], "upstream_asset_id": ids["events"]},
            {"asset_id": ids["user_report"], "upstream_asset_id": ids["users"]},
        ],
        key=lambda d: d["asset_id"],
    )
    listed = (await clients.viewer.get("/api/sources/")).json()
    assert listed == [source]


async def test_asset_keys_bindings_and_destinations(clients):
    config = await create_resource(clients.editor)
    dest_1 = await create_destination(clients.editor, name="one")
    dest_2 = await create_destination(clients.editor, name="two")
    source = await create_source(
        clients.editor,
        resources={"config": config["id"]},
        asset_keys=["users", "user_report"],
        destination_ids=[dest_2["id"], dest_1["id"]],
    )
    assert [a["key"] for a in source["assets"]] == ["users", "user_report"]
    assert source["resources"] == {"config": config["id"]}
    assert source["destination_ids"] == [dest_2["id"], dest_1["id"]]
    assert [d["id"] for d in source["destinations"]] == [dest_2["id"], dest_1["id"]]
    assert source["destinations"][0] == dest_2


async def test_update_source(clients):
    source = await create_source(clients.editor, asset_keys=["users", "user_report"])
    ids = {a["key"]: a["id"] for a in source["assets"]}
    dest = await create_destination(clients.editor)
    # null fields keep their values; asset_keys null adds asset types missing from the source
    r = await clients.editor.put(
        f"/api/sources/{source['id']}", json={"key": "ignored", "name": "Renamed", "destination_ids": [dest["id"]]}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "Renamed" and body["key"] == "demo_source"
    assert body["destination_ids"] == [dest["id"]]
    keys = {a["key"]: a["id"] for a in body["assets"]}
    assert set(keys) == {"events", "daily_summary", "users", "user_report"}
    assert keys["users"] == ids["users"]  # existing rows keep their ids
    deps = (await clients.viewer.get("/api/assets/dependencies")).json()
    assert {"asset_id": keys["daily_summary"], "upstream_asset_id": keys["events"]} in deps
    # a list: exactly that set (edges of removed assets go with them)
    r = await clients.editor.put(
        f"/api/sources/{source['id']}", json={"key": "x", "name": "R", "asset_keys": ["events"], "destination_ids": []}
    )
    body = r.json()
    assert [a["key"] for a in body["assets"]] == ["events"]
    assert body["destination_ids"] == [] and body["destinations"] == []
    assert (await clients.viewer.get("/api/assets/dependencies")).json() == []


async def test_cross_dependencies(clients):
    upstream_source = await create_source(clients.editor, name="Up", asset_keys=["users"])
    upstream = upstream_source["assets"][0]["id"]
    source = await create_source(
        clients.editor, key="demo_ads", name="Ads", cross_deps={"campaigns": {"people": upstream}}
    )
    campaigns = source["assets"][0]["id"]
    deps = (await clients.viewer.get("/api/assets/dependencies")).json()
    assert deps == [{"asset_id": campaigns, "upstream_asset_id": upstream}]
    # an empty value removes the edge of that parameter
    r = await clients.editor.put(
        f"/api/sources/{source['id']}",
        json={"key": "demo_ads", "name": "Ads", "cross_deps": {"campaigns": {"people": ""}}},
    )
    assert r.status_code == 200
    assert (await clients.viewer.get("/api/assets/dependencies")).json() == []
    # a cycle through cross dependencies is refused
    r = await clients.editor.put(
        f"/api/sources/{upstream_source['id']}",
        json={"key": "x", "name": "Up", "cross_deps": {"users": {"campaigns": campaigns}}},
    )
    assert r.status_code == 200
    r = await clients.editor.put(
        f"/api/sources/{source['id']}", json={"key": "x", "name": "Ads", "cross_deps": {"campaigns": {"p": upstream}}}
    )
    assert r.status_code == 422
    assert r.json() == {"detail": f"Dependency {upstream} -> {campaigns} would create a cycle"}


async def test_validation(clients, db):
    from ..conftest import table_count

    resource = await create_resource(clients.editor)
    connection = await create_resource(
        clients.editor,
        kind="connection",
        key="demo_ads_connection",
        name="c",
        data={"client_id": "a", "client_secret": "b", "refresh_token": "c"},
    )
    cases = [
        ({"key": "nope", "name": "x"}, {"detail": "Unknown source key: nope"}),
        ({"key": "demo_ping", "name": "x"}, {"detail": "Unknown source key: demo_ping"}),
        (
            {"key": "demo_source", "name": "x", "asset_keys": ["users", "zzz"]},
            {"detail": "Unknown asset key 'zzz' for source demo_source"},
        ),
        (
            {"key": "demo_source", "name": "x", "resources": {"conn": resource["id"]}},
            {"detail": "Unknown resource slot 'conn' for demo_source (slots: config)"},
        ),
        (
            {"key": "demo_source", "name": "x", "resources": {"config": connection["id"]}},
            {
                "detail": f"Resource {connection['id']} is a demo_ads_connection; slot 'config' of demo_source expects demo_config"
            },
        ),
        (
            {"key": "demo_source", "name": "x", "cross_deps": {"nope": {}}},
            {"detail": "Unknown asset key 'nope' for source demo_source"},
        ),
    ]
    for body, expected in cases:
        r = await clients.editor.post("/api/sources/", json=body)
        assert (r.status_code, r.json()) == (422, expected), body
    r = await clients.editor.post("/api/sources/", json={"key": "demo_source", "name": "x", "config": {"region": 1}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "config", "region"]
    r = await clients.editor.post("/api/sources/", json={"key": "demo_source", "name": "x", "destination_ids": ["bad"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "destination_ids", 0]
    missing = uuid.uuid4()
    for body, detail in [
        ({"destination_ids": [str(missing)]}, f"Destination {missing} not found"),
        ({"resources": {"config": str(missing)}}, f"Resource {missing} not found"),
        ({"cross_deps": {"events": {"p": str(missing)}}}, f"Upstream asset {missing} not found"),
    ]:
        r = await clients.editor.post("/api/sources/", json={"key": "demo_source", "name": "x", **body})
        assert (r.status_code, r.json()) == (404, {"detail": detail}), body
    r = await clients.editor.post("/api/sources/", json={"name": "x"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "key"]
    assert await table_count(db, "sources") == 0
    assert await table_count(db, "assets") == 0


async def test_delete_cascades(clients, db):
    from ..conftest import table_count

    source = await create_source(clients.editor)
    r = await clients.editor.delete(f"/api/sources/{source['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    assert await table_count(db, "assets") == 0
    assert await table_count(db, "asset_dependencies") == 0
    r = await clients.editor.delete(f"/api/sources/{source['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Source {source['id']} not found"})


async def test_other_organisation(clients):
    source = await create_source(clients.editor)
    mine = await create_source(clients.other_org, name="B's")
    assert [s["id"] for s in (await clients.other_org.get("/api/sources/")).json()] == [mine["id"]]
    detail = {"detail": f"Source {source['id']} not found"}
    r = await clients.other_org.put(f"/api/sources/{source['id']}", json={"key": "x", "name": "hijack"})
    assert (r.status_code, r.json()) == (404, detail)
    r = await clients.other_org.delete(f"/api/sources/{source['id']}")
    assert (r.status_code, r.json()) == (404, detail)
    # ids of org A inside org B's bodies are unknown
    foreign_resource = await create_resource(clients.editor)
    foreign_destination = await create_destination(clients.editor)
    upstream = source["assets"][0]["id"]
    for body, detail in [
        ({"resources": {"config": foreign_resource["id"]}}, f"Resource {foreign_resource['id']} not found"),
        ({"destination_ids": [foreign_destination["id"]]}, f"Destination {foreign_destination['id']} not found"),
        ({"cross_deps": {"events": {"p": upstream}}}, f"Upstream asset {upstream} not found"),
    ]:
        r = await clients.other_org.post("/api/sources/", json={"key": "demo_source", "name": "x", **body})
        assert (r.status_code, r.json()) == (404, {"detail": detail})
        r = await clients.other_org.put(f"/api/sources/{mine['id']}", json={"key": "x", "name": "y", **body})
        assert (r.status_code, r.json()) == (404, {"detail": detail})
