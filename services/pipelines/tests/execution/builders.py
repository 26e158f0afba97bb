"""Jobs over the demo and test catalogs, built through the API."""

from __future__ import annotations

from typing import Any

import httpx


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
    r = await client.post(path, json=body) if body is not None else await client.post(path)
    assert r.status_code == status, r.text
    return r.json()


async def demo_job(
    client: httpx.AsyncClient, base_path: str = "out", greeting: str = "hey", **job: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A demo source (config resource, CSV destination writing to `base_path` inside the
    organisation's directory) in a partitioned job: (job, source)."""
    config = await post(
        client,
        "/api/resources/",
        {"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": greeting}},
    )
    destination = await post(
        client, "/api/destinations/", {"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": base_path}}
    )
    source = await post(
        client,
        "/api/sources/",
        {
            "key": "demo_source",
            "name": "Demo",
            "resources": {"config": config["id"]},
            "destination_ids": [destination["id"]],
        },
    )
    body = {"name": "demo", "cron": "0 3 * * *", "source_ids": [source["id"]], "partitioned": True, **job}
    return await post(client, "/api/jobs/", body), source


async def asset_job(
    client: httpx.AsyncClient, key: str, config: dict[str, Any] | None = None, **job: Any
) -> dict[str, Any]:
    """A job over one standalone asset of the test catalog."""
    asset = await post(client, "/api/assets/", {"key": key, "config": config or {}}, status=201)
    body = {"name": key, "cron": "0 3 * * *", "asset_ids": [asset["id"]], **job}
    job_row: dict[str, Any] = await post(client, "/api/jobs/", body)
    job_row["asset"] = asset
    return job_row


async def run(client: httpx.AsyncClient, job_id: str, partition_date: str | None = None) -> str:
    body = {"partition_date": partition_date} if partition_date else None
    result = await post(client, f"/api/jobs/{job_id}/run", body)
    run_id: str = result["run_id"]
    return run_id


async def backfill(client: httpx.AsyncClient, job_id: str, start: str, end: str, **options: Any) -> str:
    result = await post(client, f"/api/jobs/{job_id}/backfill", {"start_date": start, "end_date": end, **options})
    backfill_id: str = result["backfill_id"]
    return backfill_id
