"""POST/GET /api/organisations (spec 2.5) and the collection's trailing-slash redirect."""

from __future__ import annotations

import re

from sqlalchemy import text

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_create_organisation_switches_the_session(clients, world, db, outbox):
    r = await clients.no_org.post("/api/organisations", json={"name": "Acme"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "name", "created_at"}
    assert body["name"] == "Acme"
    assert ISO_Z.match(body["created_at"])
    me = (await clients.no_org.get("/api/auth/me")).json()
    assert me["organisation"] == body
    assert me["role"] == "admin"
    assert me["last_organisation_id"] == body["id"]
    async with db() as s:
        role = (
            await s.execute(
                text("SELECT role FROM memberships WHERE organisation_id = :o AND user_id = :u"),
                {"o": body["id"], "u": world.no_org.user_id},
            )
        ).scalar_one()
    assert role == "admin"
    switched = await outbox("identity.session.switched")
    assert [e["payload"]["org_id"] for e in switched] == [body["id"]]


async def test_create_organisation_from_another_organisation(clients, world):
    r = await clients.viewer.post("/api/organisations", json={"name": "Side project"})
    assert r.status_code == 201
    me = (await clients.viewer.get("/api/auth/me")).json()
    assert (me["organisation"]["id"], me["role"]) == (r.json()["id"], "admin")


async def test_create_organisation_validation(clients):
    r = await clients.no_org.post("/api/organisations", json={})
    assert r.status_code == 422
    assert r.json() == {"detail": [{"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": {}}]}
    for blank in ("", "   ", "\t\n"):
        r = await clients.no_org.post("/api/organisations", json={"name": blank})
        assert r.status_code == 422, blank
        [error] = r.json()["detail"]
        assert (error["loc"], error["msg"]) == (["body", "name"], "Value error, name must not be empty")
    assert (await clients.no_org.get("/api/organisations")).json() == []
    r = await clients.no_org.post("/api/organisations", content=b'{"name":"x"}', headers={"content-type": "text/plain"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "model_attributes_type"


async def test_create_organisation_denials(clients, db):
    r = await clients.anonymous.post("/api/organisations", json={"name": "x"})
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await clients.invalid.post("/api/organisations", json={})
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})
    r = await clients.anonymous.post("/api/organisations", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM organisations"))).scalar_one() == 2


async def test_list_organisations(clients, world, join):
    a = {"id": str(world.org_a), "name": "Org A"}
    b = {"id": str(world.org_b), "name": "Org B"}

    def strip(items):
        assert all(set(i) == {"id", "name", "created_at"} and ISO_Z.match(i["created_at"]) for i in items)
        return sorted(({"id": i["id"], "name": i["name"]} for i in items), key=lambda i: i["name"])

    r = await clients.owner.get("/api/organisations")
    assert r.status_code == 200
    assert strip(r.json()) == [a]
    assert strip((await clients.other_org.get("/api/organisations")).json()) == [b]
    assert (await clients.no_org.get("/api/organisations")).json() == []
    assert (await clients.removed.get("/api/organisations")).json() == []
    await join(world.owner, world.org_b, "viewer")
    assert strip((await clients.owner.get("/api/organisations")).json()) == [a, b]


async def test_list_organisations_denials(clients):
    r = await clients.anonymous.get("/api/organisations")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await clients.invalid.get("/api/organisations")
    assert (r.status_code, r.json()) == (401, {"detail": "Invalid or expired session"})


async def test_the_collection_answers_with_a_trailing_slash_too(clients):
    """`/api/organisations/` is served as `/api/organisations` (no redirect, issue 23)."""
    r = await clients.owner.post("/api/organisations/", json={"name": "Slashed"})
    assert r.status_code == 201, r.text
    bare, slashed = await clients.owner.get("/api/organisations"), await clients.owner.get("/api/organisations/")
    assert (bare.status_code, slashed.status_code) == (200, 200) and bare.json() == slashed.json()
    assert "Slashed" in [o["name"] for o in bare.json()]
    r = await clients.anonymous.get("/api/organisations/?x=1")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
