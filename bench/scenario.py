"""The organisation and quick demo job that `make chaos` and `make soak` load, through the public API."""

from __future__ import annotations

import uuid

import httpx


async def live_job(client: httpx.AsyncClient, name: str, seconds: float) -> str:
    """Sign `client` in as the admin of a new organisation with a job of the demo `demo_live`
    source (one step of `seconds`): its id."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@{name}.example"
    assert (await client.get("/api/auth/dev-login", params={"email": email})).status_code == 302
    assert (await client.post("/api/organisations", json={"name": name.capitalize()})).status_code == 201
    destination = (
        await client.post(
            "/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": name}}
        )
    ).json()
    source = (
        await client.post(
            "/api/sources/",
            json={
                "key": "demo_live",
                "name": "Live",
                "config": {"seconds": seconds, "steps": 1},
                "destination_ids": [destination["id"]],
            },
        )
    ).json()
    job = await client.post("/api/jobs/", json={"name": name, "cron": "0 4 * * *", "source_ids": [source["id"]]})
    assert job.status_code == 200, job.text
    return str(job.json()["id"])
