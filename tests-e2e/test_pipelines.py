"""The pipelines API end to end, through Traefik and the gateway: catalog, resources, sources,
destinations, assets, jobs, runs and backfills, with two organisations.

The stack runs the project's demo catalog (icp_pipelines.demo). The launcher passes its own
environment through to the services, so INTERLOPER_CATALOG is set here, before any stack starts
(pytest imports every test module before running the session fixtures), unless already set."""

from __future__ import annotations

import json
import os
import uuid

import httpx

from icp_pipelines.demo import CATALOG_PATHS

os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))


def sign_in(api: httpx.Client, email: str, org: str | None = None) -> dict:
    r = api.get("/api/auth/dev-login", params={"email": email})
    assert r.status_code == 302, r.text
    assert "session_token" in api.cookies
    if org is None:
        return {}
    r = api.post("/api/organisations", json={"name": org})
    assert r.status_code == 201, r.text
    body: dict = r.json()
    return body


def test_catalog_and_specs_are_public(api: httpx.Client) -> None:
    r = api.get("/api/specs")
    assert r.status_code == 200
    assert {"demo_source", "demo_ads_connection", "demo_csv_destination"} <= set(r.json())
    r = api.get("/api/catalog")
    assert r.status_code == 200  # no redirect (issue 23)
    assert r.json() == api.get("/api/catalog/").json() == api.get("/api/specs").json()
    assert api.get("/api/resources/kinds").json() == ["config", "connection"]


def test_pipeline_objects_through_the_gateway(base_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=base_url, timeout=30.0) as alice, httpx.Client(base_url=base_url, timeout=30.0) as bob:
        r = alice.get("/api/sources/")
        assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
        sign_in(alice, f"alice-{suffix}@example.com")
        r = alice.get("/api/sources/")
        assert (r.status_code, r.json()) == (400, {"detail": "No organisation selected"})
        org = sign_in(alice, f"alice-{suffix}@example.com", "Acme")
        sign_in(bob, f"bob-{suffix}@example.com", "Bobco")

        r = alice.post(
            "/api/resources",
            json={"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": "hey"}},
            follow_redirects=False,
        )
        assert r.status_code == 200, r.text  # served without the slash, no redirect (issue 23)
        resource = r.json()
        assert resource["org_id"] == org["id"]
        assert alice.get(f"/api/resources/{resource['id']}").json()["data"] == {"greeting": "hey"}

        destination = alice.post("/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV"}).json()
        r = alice.post(
            "/api/sources/",
            json={
                "key": "demo_source",
                "name": "Demo",
                "resources": {"config": resource["id"]},
                "destination_ids": [destination["id"]],
            },
        )
        assert r.status_code == 200, r.text
        source = r.json()
        assert source["destination_ids"] == [destination["id"]]
        assert len(source["assets"]) == 4
        r = alice.post("/api/sources/", json={"key": "nope", "name": "x"})
        assert (r.status_code, r.json()) == (422, {"detail": "Unknown source key: nope"})

        r = alice.post(
            "/api/jobs/", json={"name": "daily", "cron": "0 4 * * *", "source_ids": [source["id"]], "partitioned": True}
        )
        assert r.status_code == 200, r.text
        job = r.json()
        r = alice.post("/api/jobs/", json={"name": "bad", "cron": "not a cron"})
        assert (r.status_code, r.json()) == (422, {"detail": "Invalid cron expression: 'not a cron'"})

        r = alice.post(f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-01-02"})
        assert r.status_code == 200 and r.json()["status"] == "queued"
        run_id = r.json()["run_id"]
        r = alice.post(
            f"/api/jobs/{job['id']}/backfill",
            json={"start_date": "2024-01-01", "end_date": "2024-01-03", "concurrency": 1},
        )
        assert r.status_code == 200
        backfill_id = r.json()["backfill_id"]
        runs = alice.get(f"/api/runs?backfill_id={backfill_id}", follow_redirects=True).json()
        assert len(runs) == 3
        assert alice.get(f"/api/runs/{run_id}").json()["partition_date"] == "2024-01-02"
        assert alice.get(f"/api/backfills/{backfill_id}").json()["partitions"] == 3
        assert alice.get(f"/api/jobs/{job['id']}").json()["last_run_at"] is not None
        assert alice.get(f"/api/runs/{run_id}/events").status_code == 200

        # Bob (another organisation) sees and touches nothing of Alice's.
        assert bob.get("/api/sources/").json() == []
        assert bob.get("/api/runs/").json() == []
        for path in (
            f"/api/resources/{resource['id']}",
            f"/api/jobs/{job['id']}",
            f"/api/runs/{run_id}",
            f"/api/backfills/{backfill_id}",
        ):
            assert bob.get(path).status_code == 404, path
        r = bob.post(f"/api/jobs/{job['id']}/run")
        assert (r.status_code, r.json()) == (404, {"detail": f"Job {job['id']} not found"})
        r = bob.post(
            "/api/sources/", json={"key": "demo_source", "name": "steal", "resources": {"config": resource["id"]}}
        )
        assert (r.status_code, r.json()) == (404, {"detail": f"Resource {resource['id']} not found"})
        r = bob.delete(f"/api/sources/{source['id']}")
        assert r.status_code == 404
        assert len(alice.get("/api/sources/").json()) == 1


def _two_orgs_and_a_job(base_url: str, suffix: str) -> tuple[httpx.Client, httpx.Client, dict]:
    carol, dave = httpx.Client(base_url=base_url, timeout=30.0), httpx.Client(base_url=base_url, timeout=30.0)
    sign_in(carol, f"carol-{suffix}@example.com", "Carol Inc")
    sign_in(dave, f"dave-{suffix}@example.com", "Dave Ltd")
    job = carol.post("/api/jobs/", json={"name": "ws", "cron": "0 0 * * *", "enabled": False}).json()
    return carol, dave, job


async def test_run_changes_reach_the_websocket(base_url: str) -> None:
    """pipelines outbox -> JetStream REALTIME -> gateway /api/ws -> browser, for the caller's org only."""
    import asyncio

    import websockets

    carol, dave, job = await asyncio.to_thread(_two_orgs_and_a_job, base_url, uuid.uuid4().hex[:8])
    ws_url = base_url.replace("http://", "ws://") + "/api/ws"

    def cookie(client: httpx.Client) -> str:
        return f"session_token={client.cookies['session_token']}"

    try:
        async with (
            websockets.connect(ws_url, additional_headers={"Cookie": cookie(carol)}) as mine,
            websockets.connect(ws_url, additional_headers={"Cookie": cookie(dave)}) as theirs,
        ):
            await asyncio.sleep(0.5)  # the relay subscribes with deliver-new
            run_id = (await asyncio.to_thread(carol.post, f"/api/jobs/{job['id']}/run")).json()["run_id"]
            message: dict = {}
            async with asyncio.timeout(15):
                while message.get("record", {}).get("id") != run_id:
                    message = json.loads(await mine.recv())
            assert (message["table"], message["event"]) == ("runs", "INSERT")
            assert message["record"]["status"] == "queued"
            assert message["record"]["job_id"] == job["id"]
            try:
                async with asyncio.timeout(1):
                    while True:
                        other = json.loads(await theirs.recv())
                        assert other.get("record", {}).get("id") != run_id
            except TimeoutError:
                pass
    finally:
        carol.close()
        dave.close()
