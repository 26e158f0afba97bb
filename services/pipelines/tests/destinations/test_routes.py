"""`/api/destinations` (spec 2.9)."""

from __future__ import annotations

import uuid

from ..conftest import table_count
from ..factories import CONNECTION_DATA, create_destination, create_resource

DESTINATION_KEYS = {"id", "key", "name", "config", "resources", "created_at"}


async def test_create_list_update_delete(clients, db):
    created = await create_destination(clients.editor)
    assert set(created) == DESTINATION_KEYS
    assert (created["key"], created["name"], created["config"], created["resources"]) == (
        "demo_csv_destination",
        "CSV",
        {"base_path": "out"},
        {},
    )
    assert (await clients.viewer.get("/api/destinations/")).json() == [created]

    r = await clients.editor.put(f"/api/destinations/{created['id']}", json={"key": "ignored", "name": "Renamed"})
    assert r.status_code == 200
    assert r.json() == {**created, "name": "Renamed"}  # config kept, key ignored
    r = await clients.editor.put(
        f"/api/destinations/{created['id']}", json={"key": "x", "config": {"base_path": "b/c"}}
    )
    assert r.json()["config"] == {"base_path": "b/c"} and r.json()["name"] == "Renamed"

    r = await clients.editor.delete(f"/api/destinations/{created['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    assert await table_count(db, "destinations") == 0
    r = await clients.editor.put(f"/api/destinations/{created['id']}", json={"key": "x"})
    assert (r.status_code, r.json()) == (404, {"detail": f"Destination {created['id']} not found"})
    r = await clients.editor.delete(f"/api/destinations/{created['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Destination {created['id']} not found"})


async def test_validation(clients, db):
    r = await clients.editor.post("/api/destinations/", json={"key": "bogus"})
    assert (r.status_code, r.json()) == (422, {"detail": "Unknown destination key: bogus"})
    r = await clients.editor.post("/api/destinations/", json={"key": "demo_source"})
    assert (r.status_code, r.json()) == (422, {"detail": "Unknown destination key: demo_source"})
    r = await clients.editor.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "config": {"base_path": 3}}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "config", "base_path"]
    r = await clients.editor.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "resources": {"connection": "not-a-uuid"}}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "resources", "connection"]
    resource = await create_resource(clients.editor)
    r = await clients.editor.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "resources": {"connection": resource["id"]}}
    )
    assert (r.status_code, r.json()) == (
        422,
        {"detail": "Unknown resource slot 'connection' for demo_csv_destination (slots: none)"},
    )
    assert await table_count(db, "destinations") == 0


async def test_the_demo_csv_destination_path_stays_inside_the_organisation(clients, db):
    """Issue 15 #9: `base_path` is relative to the organisation's own directory; one leaving it is
    refused at save time (and again at run time, see execution/test_demo_output.py)."""
    created = await create_destination(clients.editor)
    for escaping in ("/tmp/evil", "../../x", "a/../../x", "..", "nul\u0000byte"):
        for method, path in (("POST", "/api/destinations/"), ("PUT", f"/api/destinations/{created['id']}")):
            r = await clients.editor.request(
                method, path, json={"key": "demo_csv_destination", "config": {"base_path": escaping}}
            )
            assert r.status_code == 422, (escaping, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "config", "base_path"]
            assert "inside the organisation's demo output directory" in r.json()["detail"][0]["msg"]
    assert [d["config"] for d in (await clients.viewer.get("/api/destinations/")).json()] == [{"base_path": "out"}]
    assert await table_count(db, "destinations") == 1


async def test_resource_bindings_are_scoped(clients):
    foreign = await create_resource(
        clients.other_org, kind="connection", key="demo_ads_connection", name="B", data=CONNECTION_DATA
    )
    created = await create_destination(clients.editor)
    missing = uuid.uuid4()
    for rid in (foreign["id"], str(missing)):
        r = await clients.editor.put(f"/api/destinations/{created['id']}", json={"key": "x", "resources": {"s": rid}})
        assert r.status_code == 422  # unknown slot first: the destination declares none
    r = await clients.other_org.put(f"/api/destinations/{created['id']}", json={"key": "x", "name": "hijack"})
    assert (r.status_code, r.json()) == (404, {"detail": f"Destination {created['id']} not found"})
    r = await clients.other_org.delete(f"/api/destinations/{created['id']}")
    assert r.status_code == 404
    assert (await clients.other_org.get("/api/destinations/")).json() == []
    assert (await clients.viewer.get("/api/destinations/")).json()[0]["name"] == "CSV"
