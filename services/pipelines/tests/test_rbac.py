"""The RBAC matrix of every org-scoped route: anonymous, invalid session, no organisation,
organisation gone, removed member, viewer, editor, admin -- exact bodies in the contract's
precedence, and no side effect on denial."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from icp_common.identity import Identity

from .conftest import BASE_URL, SignedIdentityTransport
from .factories import create_destination, create_job, create_resource, create_source, create_standalone_asset

TABLES = (
    "resources",
    "sources",
    "destinations",
    "assets",
    "asset_dependencies",
    "jobs",
    "runs",
    "backfills",
    "events",
    "outbox",
)


@pytest.fixture
async def ids(clients) -> dict[str, Any]:
    resource = await create_resource(clients.editor)
    destination = await create_destination(clients.editor)
    source = await create_source(clients.editor)
    asset = await create_standalone_asset(clients.editor)
    other = await create_standalone_asset(clients.editor)
    job = await create_job(clients.editor)
    run_id = (await clients.editor.post(f"/api/jobs/{job['id']}/run")).json()["run_id"]
    backfill_id = (
        await clients.editor.post(
            f"/api/jobs/{job['id']}/backfill", json={"start_date": "2024-01-01", "end_date": "2024-01-01"}
        )
    ).json()["backfill_id"]
    return {
        "resource": resource["id"],
        "destination": destination["id"],
        "source": source["id"],
        "asset": asset["id"],
        "other": other["id"],
        "job": job["id"],
        "run": run_id,
        "backfill": backfill_id,
    }


def routes(i: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, json body, minimum role) of every org-scoped route."""
    config = {"kind": "config", "key": "demo_config", "name": "x", "data": {}}
    return [
        ("GET", "/api/resources/", None, "viewer"),
        ("GET", f"/api/resources/{i['resource']}", None, "viewer"),
        ("POST", "/api/resources/", config, "editor"),
        ("PUT", f"/api/resources/{i['resource']}", config, "editor"),
        ("DELETE", f"/api/resources/{i['resource']}", None, "editor"),
        ("GET", "/api/sources/", None, "viewer"),
        ("POST", "/api/sources/", {"key": "demo_source", "name": "x"}, "editor"),
        ("PUT", f"/api/sources/{i['source']}", {"key": "demo_source", "name": "x"}, "editor"),
        ("DELETE", f"/api/sources/{i['source']}", None, "editor"),
        ("GET", "/api/destinations/", None, "viewer"),
        ("POST", "/api/destinations/", {"key": "demo_csv_destination"}, "editor"),
        ("PUT", f"/api/destinations/{i['destination']}", {"key": "x", "name": "y"}, "editor"),
        ("DELETE", f"/api/destinations/{i['destination']}", None, "editor"),
        ("GET", "/api/assets/", None, "viewer"),
        ("POST", "/api/assets/", {"key": "demo_ping"}, "editor"),
        ("GET", "/api/assets/dependencies", None, "viewer"),
        ("GET", f"/api/assets/{i['asset']}", None, "viewer"),
        ("GET", f"/api/assets/{i['asset']}/partition-row-counts", None, "viewer"),
        ("PUT", f"/api/assets/{i['asset']}", {"materializable": False}, "editor"),
        ("DELETE", f"/api/assets/{i['asset']}", None, "editor"),
        (
            "POST",
            f"/api/assets/{i['asset']}/dependencies",
            {"upstream_asset_id": i["other"], "param_name": "p"},
            "editor",
        ),
        ("DELETE", f"/api/assets/{i['asset']}/dependencies/{i['other']}", None, "editor"),
        ("GET", "/api/jobs/", None, "viewer"),
        ("GET", f"/api/jobs/{i['job']}", None, "viewer"),
        ("POST", "/api/jobs/", {"name": "x", "cron": "* * * * *"}, "editor"),
        ("PUT", f"/api/jobs/{i['job']}", {"name": "x", "cron": "* * * * *"}, "editor"),
        ("DELETE", f"/api/jobs/{i['job']}", None, "editor"),
        ("POST", f"/api/jobs/{i['job']}/run", None, "editor"),
        ("POST", f"/api/jobs/{i['job']}/backfill", {"start_date": "2024-01-01", "end_date": "2024-01-02"}, "editor"),
        ("GET", "/api/runs/", None, "viewer"),
        ("GET", f"/api/runs/{i['run']}", None, "viewer"),
        ("GET", f"/api/runs/{i['run']}/events", None, "viewer"),
        ("GET", f"/api/runs/{i['run']}/asset-executions", None, "viewer"),
        ("GET", "/api/backfills/", None, "viewer"),
        ("GET", f"/api/backfills/{i['backfill']}", None, "viewer"),
    ]


async def snapshot(db) -> dict[str, Any]:
    async with db() as s:
        counts = {t: (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}
        # A refused write adds only its audit entry (outcome "denied") to the outbox.
        counts["outbox"] = (
            await s.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE NOT (subject LIKE 'audit.%' AND payload::jsonb->>'outcome' = 'denied')"
                )
            )
        ).scalar_one()
        counts["names"] = (await s.execute(text("SELECT string_agg(name, ',' ORDER BY name) FROM resources"))).scalar()
        counts["materializable"] = (await s.execute(text("SELECT bool_and(materializable) FROM assets"))).scalar()
    return counts


async def test_denied_callers_get_the_contract_bodies_and_change_nothing(clients, ids, db):
    before = await snapshot(db)
    for method, path, body, minimum in routes(ids):
        denied = list(clients.denied())
        if minimum == "editor":
            denied.append(("viewer", clients.viewer, 403, "Requires editor role or higher"))
        for name, client, status, detail in denied:
            r = await client.request(method, path, json=body)
            assert (r.status_code, r.json()) == (status, {"detail": detail}), (name, method, path)
    assert await snapshot(db) == before
    # Each refused (403) write is an audit entry, attributed to the viewer; 401/404s are not.
    async with db() as s:
        entries = [
            json.loads(p)
            for (p,) in await s.execute(
                text(
                    "SELECT payload FROM outbox WHERE subject LIKE 'audit.%' AND payload::jsonb->>'outcome' = 'denied'"
                    " ORDER BY id"
                )
            )
        ]
    denied_writes = [(m, p) for m, p, _, minimum in routes(ids) if minimum == "editor" and m != "GET"]
    # The viewer (role too low) and the removed member ("Not a member", 403) on every write.
    assert len(entries) == 2 * len(denied_writes)
    actions = [
        *("resources.create", "resources.update", "resources.delete"),
        *("sources.create", "sources.update", "sources.delete"),
        *("destinations.create", "destinations.update", "destinations.delete"),
        *("assets.create", "assets.update", "assets.delete"),
        *("assets.dependencies.create", "assets.dependencies.delete"),
        *("jobs.create", "jobs.update", "jobs.delete", "jobs.run", "jobs.backfill"),
    ]
    assert sorted(e["action"] for e in entries) == sorted(actions * 2)
    assert len({e["actor"]["id"] for e in entries}) == 2
    assert all(e["request_id"] and e["organisation_id"] for e in entries)
    assert {e["target"]["type"] for e in entries} == {"resource", "source", "destination", "asset", "job"}
    assert {"target": {"type": "job", "id": ids["job"]}, "action": "jobs.update"}.items() <= next(
        e for e in entries if e["action"] == "jobs.update"
    ).items()
    assert {e["outcome"] for e in entries} == {"denied"}
    assert {e["actor"]["type"] for e in entries} == {"user"}


async def test_bad_ids_do_not_change_the_precedence(clients, ids):
    """An anonymous caller with a malformed id gets 401; a viewer posting an invalid body to an
    editor route gets 403 (spec 1.5)."""
    r = await clients.anonymous.get("/api/runs/not-a-uuid")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    r = await clients.viewer.post("/api/jobs/", json={"nonsense": True})
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    r = await clients.anonymous.post("/api/jobs/", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


async def test_allowed_roles_succeed(clients, ids):
    for method, path, body, minimum in routes(ids):
        allowed = [clients.admin, clients.editor] + ([clients.viewer] if minimum == "viewer" else [])
        for client in allowed:
            if method != "GET":
                continue
            r = await client.request(method, path, json=body)
            expected = 400 if path.endswith("partition-row-counts") else 200  # demo_ping is not partitioned
            assert r.status_code == expected, (method, path, r.text)
    # writes, once each, by an admin (editor is covered by every domain's tests)
    for method, path, body, _ in routes(ids):
        if method == "GET" or method == "DELETE":
            continue
        r = await clients.admin.request(method, path, json=body)
        assert r.status_code in (200, 201), (method, path, r.text)


@pytest.mark.parametrize(
    "changes",
    [
        {"org_id": "not-an-org"},
        {"org_id": "1 OR 1=1", "role": "admin"},
        {"user_id": "u1"},
        {"session_id": "s1"},
    ],
)
async def test_an_assertion_with_ids_that_are_not_uuids_is_401_not_500(app, world, ids, db, changes):
    """The caller is parsed once at the edge (icp_common.caller): a signed assertion whose ids are
    not UUIDs (a gateway bug, never an attacker's forgery) is refused on every route, nothing written."""
    forged = Identity(**{**world.editor.to_dict(), **changes})
    cancels = [
        ("POST", f"/api/runs/{ids['run']}/cancel", None, "editor"),
        ("POST", f"/api/backfills/{ids['backfill']}/cancel", None, "editor"),
        ("POST", f"/api/backfills/{ids['backfill']}/retry-failed", None, "editor"),
        ("POST", "/api/oauth/google", {"code": "c"}, "editor"),
        ("POST", "/api/external/google-ads/customers", {"refresh_token": "t"}, "viewer"),
    ]
    before = await snapshot(db)
    transport = SignedIdentityTransport(app, forged)
    transport.inner = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is a response here
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for method, path, body, _ in routes(ids) + cancels:
            r = await client.request(method, path, json=body)
            assert (r.status_code, r.json()) == (401, {"detail": "Malformed caller identity"}), (method, path)
    assert await snapshot(db) == before
