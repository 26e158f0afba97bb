"""`/api/resources` (spec 2.7): catalog-checked, validated, encrypted at rest, tenant scoped."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import text

from ..conftest import table_count
from ..factories import CONNECTION_DATA, create_resource

DB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00$")
RESOURCE_KEYS = {"id", "org_id", "kind", "key", "name", "encrypted", "created_at", "updated_at"}


async def test_create_get_list_update_delete(clients, world):
    created = await create_resource(
        clients.editor, kind="connection", key="demo_ads_connection", name="Ads", data=CONNECTION_DATA, encrypted=True
    )
    assert set(created) == RESOURCE_KEYS
    assert created["org_id"] == str(world.org_a)
    assert (created["kind"], created["key"], created["name"], created["encrypted"]) == (
        "connection",
        "demo_ads_connection",
        "Ads",
        True,
    )
    assert DB_TIME.match(created["created_at"]) and DB_TIME.match(created["updated_at"])

    detail = (await clients.editor.get(f"/api/resources/{created['id']}")).json()
    assert detail == {**created, "data": CONNECTION_DATA}

    config = await create_resource(clients.editor)
    listed = (await clients.viewer.get("/api/resources/")).json()
    assert [r["id"] for r in listed] == [created["id"], config["id"]]
    assert all(set(r) == RESOURCE_KEYS for r in listed)
    assert [r["id"] for r in (await clients.viewer.get("/api/resources/?kind=config")).json()] == [config["id"]]
    assert (await clients.viewer.get("/api/resources/?kind=nothing")).json() == []

    r = await clients.editor.put(
        f"/api/resources/{created['id']}",
        json={
            "kind": "connection",
            "key": "demo_ads_connection",
            "name": "Ads 2",
            "data": {**CONNECTION_DATA, "region": "na"},
        },
    )
    assert r.status_code == 200
    updated = r.json()
    assert updated["name"] == "Ads 2"
    assert updated["encrypted"] is True  # omitted -> kept (the reference reset it)
    assert updated["updated_at"] > created["updated_at"]
    assert updated["created_at"] == created["created_at"]
    detail = (await clients.editor.get(f"/api/resources/{created['id']}")).json()
    assert detail["data"] == {**CONNECTION_DATA, "region": "na"}

    r = await clients.editor.delete(f"/api/resources/{created['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    r = await clients.viewer.get(f"/api/resources/{created['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Resource {created['id']} not found"})
    r = await clients.editor.delete(f"/api/resources/{created['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Resource {created['id']} not found"})


async def test_data_is_encrypted_at_rest_with_the_key_id(clients, db, app):
    created = await create_resource(
        clients.editor, kind="connection", key="demo_ads_connection", name="Ads", data=CONNECTION_DATA
    )
    async with db() as s:
        row = (await s.execute(text("SELECT data, wrapped_key, key_id, encrypted FROM resources"))).one()
    assert b"shh" not in bytes(row.data) and b"client_secret" not in bytes(row.data)
    assert row.key_id == app.state.cipher.active_key_id
    assert row.encrypted is False  # the flag keeps its API meaning
    # A ciphertext moved to another row does not decrypt (AAD binds org and row id).
    other = await create_resource(clients.editor)
    async with db() as s:
        await s.execute(
            text("UPDATE resources SET data = :d, wrapped_key = :w WHERE id = :id"),
            {"d": bytes(row.data), "w": bytes(row.wrapped_key), "id": other["id"]},
        )
    r = await clients.viewer.get(f"/api/resources/{other['id']}")
    assert r.status_code == 503
    assert r.json() == {"detail": f"Resource {other['id']} cannot be decrypted"}
    assert (await clients.viewer.get(f"/api/resources/{created['id']}")).status_code == 200


async def test_validation(clients, db):
    cases = [
        ({"kind": "config", "key": "nope", "name": "x", "data": {}}, "Unknown resource key: nope"),
        ({"kind": "source", "key": "demo_source", "name": "x", "data": {}}, "Unknown resource key: demo_source"),
        (
            {"kind": "connection", "key": "demo_config", "name": "x", "data": {}},
            "Resource key 'demo_config' is of kind 'config', not 'connection'",
        ),
    ]
    for body, detail in cases:
        r = await clients.editor.post("/api/resources/", json=body)
        assert (r.status_code, r.json()) == (422, {"detail": detail}), body
    r = await clients.editor.post(
        "/api/resources/",
        json={"kind": "connection", "key": "demo_ads_connection", "name": "x", "data": {"client_id": 1, "extra": 1}},
    )
    assert r.status_code == 422
    errors = {(tuple(e["loc"]), e["type"]) for e in r.json()["detail"]}
    assert errors == {
        (("body", "data", "client_id"), "string_type"),
        (("body", "data", "client_secret"), "missing"),
        (("body", "data", "refresh_token"), "missing"),
        (("body", "data", "extra"), "extra_forbidden"),
    }
    r = await clients.editor.post(
        "/api/resources/", json={"kind": "config", "key": "demo_config", "name": "x", "data": {"rows_per_day": 0}}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "data", "rows_per_day"]
    r = await clients.editor.post("/api/resources/", json={"kind": "config"})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "key"), ("body", "name"), ("body", "data")}
    r = await clients.editor.get("/api/resources/not-a-uuid")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "uuid_parsing"
    assert await table_count(db, "resources") == 0


async def test_other_organisation_sees_nothing(clients):
    created = await create_resource(clients.editor)
    rid = created["id"]
    assert (await clients.other_org.get("/api/resources/")).json() == []
    detail = {"detail": f"Resource {rid} not found"}
    r = await clients.other_org.get(f"/api/resources/{rid}")
    assert (r.status_code, r.json()) == (404, detail)
    r = await clients.other_org.put(
        f"/api/resources/{rid}", json={"kind": "config", "key": "demo_config", "name": "hijack", "data": {}}
    )
    assert (r.status_code, r.json()) == (404, detail)
    r = await clients.other_org.delete(f"/api/resources/{rid}")
    assert (r.status_code, r.json()) == (404, detail)
    assert (await clients.viewer.get(f"/api/resources/{rid}")).json()["name"] == "Demo config"


async def test_unknown_id(clients):
    rid = uuid.uuid4()
    r = await clients.viewer.get(f"/api/resources/{rid}")
    assert (r.status_code, r.json()) == (404, {"detail": f"Resource {rid} not found"})
