"""`Idempotency-Key` on every creating POST of the pipelines API (issue 22.4; the run and backfill
triggers: jobs/test_idempotency.py). A retried create replays the first answer (same id, one
row); the same key with another body is 422 and writes nothing; a key belongs to its caller
(organisation and user), so another organisation's identical key neither replays nor blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import table_count
from .factories import create_standalone_asset

KEY = "Idempotency-Key"
REPLAYED = "idempotent-replayed"


@dataclass(frozen=True)
class Create:
    url: str
    body: dict[str, Any]
    other: dict[str, Any]  # another request with the same key
    table: str
    status: int = 200


CREATES = {
    "source": Create(
        "/api/sources/", {"key": "demo_source", "name": "Demo"}, {"key": "demo_source", "name": "B"}, "sources"
    ),
    "destination": Create(
        "/api/destinations/",
        {"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "out"}},
        {"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "elsewhere"}},
        "destinations",
    ),
    "resource": Create(
        "/api/resources/",
        {"kind": "config", "key": "demo_config", "name": "Demo config", "data": {"greeting": "hi"}},
        {"kind": "config", "key": "demo_config", "name": "Demo config", "data": {"greeting": "bye"}},
        "resources",
    ),
    "job": Create(
        "/api/jobs/", {"name": "Nightly", "cron": "0 3 * * *"}, {"name": "Nightly", "cron": "0 4 * * *"}, "jobs"
    ),
    "asset": Create("/api/assets/", {"key": "demo_ping"}, {"key": "demo_ping", "config": {"x": 1}}, "assets", 201),
}


@pytest.mark.parametrize("kind", CREATES)
async def test_retry_replays_the_first_create(clients, db, kind):
    c = CREATES[kind]
    first = await clients.editor.post(c.url, json=c.body, headers={KEY: f"{kind}-1"})
    again = await clients.editor.post(c.url, json=c.body, headers={KEY: f"{kind}-1"})
    assert first.status_code == again.status_code == c.status, (first.text, again.text)
    assert again.json() == first.json() and again.json()["id"] == first.json()["id"]
    assert again.headers[REPLAYED] == "true" and REPLAYED not in first.headers
    assert await table_count(db, c.table) == 1
    # the same key with another body: 422, and nothing written
    r = await clients.editor.post(c.url, json=c.other, headers={KEY: f"{kind}-1"})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": f"Idempotency-Key '{kind}-1' was already used for a different request"},
    )
    assert await table_count(db, c.table) == 1
    # without a key, nothing changes: a second create is a second row (or the service's own 409)
    r = await clients.editor.post(c.url, json=c.body)
    assert r.status_code in (c.status, 409)
    assert await table_count(db, c.table) == (2 if r.status_code == c.status else 1)


@pytest.mark.parametrize("kind", CREATES)
async def test_another_organisation_cannot_replay_or_probe_a_key(clients, db, kind):
    """The attacker knows (or guesses) a victim's keys: with them, its requests are its own
    writes in its own organisation, never the victim's answer, nor a 422 that would tell it a
    key is in use."""
    c = CREATES[kind]
    victim = await clients.editor.post(c.url, json=c.body, headers={KEY: "shared"})
    probed = await clients.editor.post(c.url, json=c.body, headers={KEY: "probed"})
    assert victim.status_code == probed.status_code == c.status, (victim.text, probed.text)

    same = await clients.other_org.post(c.url, json=c.body, headers={KEY: "shared"})
    other = await clients.other_org.post(c.url, json=c.other, headers={KEY: "probed"})
    for r in (same, other):
        assert r.status_code == c.status, r.text
        assert REPLAYED not in r.headers
        assert r.json()["id"] not in (victim.json()["id"], probed.json()["id"])
    # the attacker's retry replays its own answer only
    again = await clients.other_org.post(c.url, json=c.body, headers={KEY: "shared"})
    assert again.headers[REPLAYED] == "true" and again.json() == same.json()
    # the victim's retry still replays the victim's answer; its organisation holds its rows only
    again = await clients.editor.post(c.url, json=c.body, headers={KEY: "shared"})
    assert again.headers[REPLAYED] == "true" and again.json() == victim.json()
    mine = (await clients.editor.get(c.url)).json()
    assert {row["id"] for row in mine} == {victim.json()["id"], probed.json()["id"]}
    theirs = (await clients.other_org.get(c.url)).json()
    assert {row["id"] for row in theirs} == {same.json()["id"], other.json()["id"]}
    assert await table_count(db, c.table) == 4


async def test_keys_are_per_user_within_an_organisation(clients, db):
    c = CREATES["job"]
    mine = await clients.editor.post(c.url, json=c.body, headers={KEY: "team"})
    theirs = await clients.admin.post(c.url, json=c.body, headers={KEY: "team"})
    assert mine.status_code == theirs.status_code == 200
    assert REPLAYED not in theirs.headers and theirs.json()["id"] != mine.json()["id"]
    assert await table_count(db, "jobs") == 2


async def test_a_refused_caller_gets_no_replay(clients, db):
    c = CREATES["source"]
    first = await clients.editor.post(c.url, json=c.body, headers={KEY: "k"})
    assert first.status_code == 200
    r = await clients.viewer.post(c.url, json=c.body, headers={KEY: "k"})
    assert r.status_code == 403 and "id" not in r.json()
    for _, client, status, _ in clients.denied():
        assert (await client.post(c.url, json=c.body, headers={KEY: "k"})).status_code == status
    assert await table_count(db, "sources") == 1 and await table_count(db, "idempotency_keys") == 1


async def test_asset_dependency_retry_replays(clients, db):
    a, b = await create_standalone_asset(clients.editor), await create_standalone_asset(clients.editor)
    url, body = f"/api/assets/{b['id']}/dependencies", {"upstream_asset_id": a["id"], "param_name": "a"}
    first = await clients.editor.post(url, json=body, headers={KEY: "edge"})
    again = await clients.editor.post(url, json=body, headers={KEY: "edge"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json() and again.headers[REPLAYED] == "true"
    r = await clients.editor.post(url, json={**body, "param_name": "z"}, headers={KEY: "edge"})
    assert r.status_code == 422
    assert await table_count(db, "asset_dependencies") == 1
    # without the key the same retry is the service's 409 (what a client saw before)
    assert (await clients.editor.post(url, json=body)).status_code == 409


async def test_a_failed_create_keeps_no_key(clients, db):
    c = CREATES["source"]
    bad = {"key": "no_such_source", "name": "x"}
    r = await clients.editor.post(c.url, json=bad, headers={KEY: "fix-and-retry"})
    assert 400 <= r.status_code < 500 and await table_count(db, "idempotency_keys") == 0
    r = await clients.editor.post(c.url, json=c.body, headers={KEY: "fix-and-retry"})
    assert r.status_code == 200 and REPLAYED not in r.headers
    assert await table_count(db, "sources") == 1


def test_the_header_is_documented_on_every_creating_post(app):
    paths = app.openapi()["paths"]
    creating = [
        ("/api/sources/", "post"),
        ("/api/destinations/", "post"),
        ("/api/resources/", "post"),
        ("/api/jobs/", "post"),
        ("/api/jobs/{job_id}/run", "post"),
        ("/api/jobs/{job_id}/backfill", "post"),
        ("/api/assets/", "post"),
        ("/api/assets/{asset_id}/dependencies", "post"),
    ]
    for path, method in creating:
        params = {p["name"]: p for p in paths[path][method]["parameters"] if p["in"] == "header"}
        assert KEY in params, path
        assert not params[KEY].get("required") and "replays the first answer" in params[KEY]["description"]
