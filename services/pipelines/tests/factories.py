"""Small builders through the HTTP API (the public contract is what the tests pin)."""

from __future__ import annotations

from typing import Any

import httpx

CONNECTION_DATA = {"client_id": "cid", "client_secret": "shh", "refresh_token": "rt"}


async def create_resource(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"kind": "config", "key": "demo_config", "name": "Demo config", "data": {"greeting": "hi"}}
    body.update(overrides)
    r = await client.post("/api/resources/", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def create_destination(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "out"}}
    body.update(overrides)
    r = await client.post("/api/destinations/", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def create_source(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"key": "demo_source", "name": "Demo"}
    body.update(overrides)
    r = await client.post("/api/sources/", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def create_job(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Nightly", "cron": "0 3 * * *"}
    body.update(overrides)
    r = await client.post("/api/jobs/", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def create_standalone_asset(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"key": "demo_ping"}
    body.update(overrides)
    r = await client.post("/api/assets/", json=body)
    assert r.status_code == 201, r.text
    return r.json()
