"""`/api/assets` (spec 2.13): standalone assets, overrides, dependency edges, scoping."""

from __future__ import annotations

import uuid

from ..conftest import table_count
from ..factories import create_destination, create_resource, create_source, create_standalone_asset

ASSET_KEYS = {"id", "source_id", "org_id", "key", "materializable", "config", "resources", "destinations", "created_at"}


async def test_standalone_asset_crud(clients, world, db):
    dest = await create_destination(clients.editor)
    asset = await create_standalone_asset(clients.editor, config={"dataset": "x"}, destination_ids=[dest["id"]])
    assert set(asset) == ASSET_KEYS
    assert (asset["source_id"], asset["org_id"], asset["key"], asset["materializable"]) == (
        None,
        str(world.org_a),
        "demo_ping",
        True,
    )
    assert asset["destinations"] == [dest] and asset["resources"] == {}
    assert (await clients.viewer.get(f"/api/assets/{asset['id']}")).json() == asset
    assert (await clients.viewer.get("/api/assets/")).json() == [asset]

    r = await clients.editor.put(f"/api/assets/{asset['id']}", json={"materializable": False, "destination_ids": []})
    assert r.status_code == 200
    assert r.json() == {**asset, "materializable": False, "destinations": []}
    r = await clients.editor.put(f"/api/assets/{asset['id']}", json={})
    assert r.json()["materializable"] is False and r.json()["config"] == {"dataset": "x"}

    r = await clients.editor.delete(f"/api/assets/{asset['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    for method in ("get", "put", "delete"):
        r = await getattr(clients.editor, method)(
            f"/api/assets/{asset['id']}", **({"json": {}} if method == "put" else {})
        )
        assert (r.status_code, r.json()) == (404, {"detail": f"Asset {asset['id']} not found"})
    assert await table_count(db, "assets") == 0


async def test_source_owned_assets(clients):
    config = await create_resource(clients.editor)
    source = await create_source(clients.editor, asset_keys=["users"])
    users = source["assets"][0]["id"]
    r = await clients.editor.delete(f"/api/assets/{users}")
    assert (r.status_code, r.json()) == (
        400,
        {"detail": "Cannot delete a source-owned asset directly. Delete or update the source instead."},
    )
    r = await clients.editor.put(f"/api/assets/{users}", json={"resources": {"config": config["id"]}})
    assert r.status_code == 200
    assert r.json()["resources"] == {"config": config["id"]} and r.json()["source_id"] == source["id"]
    r = await clients.editor.put(f"/api/assets/{users}", json={"resources": {"nope": config["id"]}})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": "Unknown resource slot 'nope' for demo_source.users (slots: config)"},
    )
    listed = (await clients.viewer.get("/api/sources/")).json()[0]["assets"]
    r = await clients.editor.put(f"/api/assets/{users}", json={"materializable": False})
    assert r.json()["materializable"] is False
    after = (await clients.viewer.get("/api/sources/")).json()[0]["assets"]
    assert after == [{**listed[0], "materializable": False}]


async def test_create_validation(clients, db):
    for key in ("nope", "demo_source", "events"):
        r = await clients.editor.post("/api/assets/", json={"key": key})
        assert (r.status_code, r.json()) == (422, {"detail": f"Unknown asset key: {key}"})
    missing = uuid.uuid4()
    r = await clients.editor.post("/api/assets/", json={"key": "demo_ping", "destination_ids": [str(missing)]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Destination {missing} not found"})
    r = await clients.editor.post("/api/assets/", json={"key": "demo_ping", "destination_ids": ["x"]})
    assert r.status_code == 422
    assert await table_count(db, "assets") == 0


async def test_dependencies(clients, db):
    a = await create_standalone_asset(clients.editor)
    b = await create_standalone_asset(clients.editor)
    c = await create_standalone_asset(clients.editor)
    r = await clients.editor.post(
        f"/api/assets/{b['id']}/dependencies", json={"upstream_asset_id": a["id"], "param_name": "a"}
    )
    assert (r.status_code, r.json()) == (201, {"asset_id": b["id"], "upstream_asset_id": a["id"]})
    r = await clients.editor.post(
        f"/api/assets/{b['id']}/dependencies", json={"upstream_asset_id": a["id"], "param_name": "a"}
    )
    assert (r.status_code, r.json()) == (409, {"detail": "Dependency already exists"})
    r = await clients.editor.post(
        f"/api/assets/{a['id']}/dependencies", json={"upstream_asset_id": a["id"], "param_name": "x"}
    )
    assert (r.status_code, r.json()) == (422, {"detail": "An asset cannot depend on itself"})
    r = await clients.editor.post(
        f"/api/assets/{c['id']}/dependencies", json={"upstream_asset_id": b["id"], "param_name": "b"}
    )
    assert r.status_code == 201
    r = await clients.editor.post(
        f"/api/assets/{a['id']}/dependencies", json={"upstream_asset_id": c["id"], "param_name": "c"}
    )
    assert (r.status_code, r.json()) == (422, {"detail": f"Dependency {c['id']} -> {a['id']} would create a cycle"})
    missing = uuid.uuid4()
    r = await clients.editor.post(
        f"/api/assets/{missing}/dependencies", json={"upstream_asset_id": a["id"], "param_name": "x"}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Asset {missing} not found"})
    r = await clients.editor.post(
        f"/api/assets/{a['id']}/dependencies", json={"upstream_asset_id": str(missing), "param_name": "x"}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Upstream asset {missing} not found"})
    r = await clients.editor.post(
        f"/api/assets/{a['id']}/dependencies", json={"upstream_asset_id": "bad", "param_name": "x"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "upstream_asset_id"]
    assert len((await clients.viewer.get("/api/assets/dependencies")).json()) == 2

    r = await clients.editor.delete(f"/api/assets/{c['id']}/dependencies/{b['id']}")
    assert (r.status_code, r.content) == (204, b"")
    r = await clients.editor.delete(f"/api/assets/{c['id']}/dependencies/{b['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Dependency of {c['id']} on {b['id']} not found"})
    assert (await clients.viewer.get("/api/assets/dependencies")).json() == [
        {"asset_id": b["id"], "upstream_asset_id": a["id"]}
    ]
    assert await table_count(db, "asset_dependencies") == 1


async def test_other_organisation(clients):
    mine = await create_standalone_asset(clients.editor)
    theirs = await create_standalone_asset(clients.other_org)
    assert [a["id"] for a in (await clients.other_org.get("/api/assets/")).json()] == [theirs["id"]]
    detail = {"detail": f"Asset {mine['id']} not found"}
    for method, kwargs in (("get", {}), ("put", {"json": {"materializable": False}}), ("delete", {})):
        r = await getattr(clients.other_org, method)(f"/api/assets/{mine['id']}", **kwargs)
        assert (r.status_code, r.json()) == (404, detail)
    r = await clients.other_org.post(
        f"/api/assets/{theirs['id']}/dependencies", json={"upstream_asset_id": mine["id"], "param_name": "x"}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Upstream asset {mine['id']} not found"})
    r = await clients.other_org.post(
        f"/api/assets/{mine['id']}/dependencies", json={"upstream_asset_id": theirs["id"], "param_name": "x"}
    )
    assert (r.status_code, r.json()) == (404, detail)
    r = await clients.other_org.delete(f"/api/assets/{mine['id']}/dependencies/{theirs['id']}")
    assert (r.status_code, r.json()) == (404, detail)
    dest = await create_destination(clients.editor)
    r = await clients.other_org.put(f"/api/assets/{theirs['id']}", json={"destination_ids": [dest["id"]]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Destination {dest['id']} not found"})
    assert (await clients.other_org.get("/api/assets/dependencies")).json() == []
    assert (await clients.viewer.get(f"/api/assets/{mine['id']}")).json()["materializable"] is True


async def test_foreign_resource_in_an_asset_body(clients):
    theirs = await create_source(clients.other_org, asset_keys=["users"])
    mine = await create_resource(clients.editor)
    r = await clients.other_org.put(
        f"/api/assets/{theirs['assets'][0]['id']}", json={"resources": {"config": mine["id"]}}
    )
    assert (r.status_code, r.json()) == (404, {"detail": f"Resource {mine['id']} not found"})
    r = await clients.other_org.put(f"/api/assets/{theirs['assets'][0]['id']}", json={"resources": {"config": "bad"}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "resources", "config"]
