"""`/api/health` (public contract) and its detailed variant: every component's readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


async def _probe(client: aiohttp.ClientSession, name: str, url: str) -> tuple[str, dict[str, Any]]:
    try:
        async with client.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(total=2.0)) as response:
            body = await response.json() if response.content_type == "application/json" else {}
            return name, {"ready": response.status == 200, "url": url, "checks": body.get("checks", {})}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return name, {"ready": False, "url": url, "error": str(exc) or type(exc).__name__}


async def detailed_health(
    client: aiohttp.ClientSession, services: dict[str, str], nats_connected: bool
) -> tuple[bool, dict[str, Any]]:
    results = dict(await asyncio.gather(*(_probe(client, n, u) for n, u in services.items() if u)))
    postgres = [r["checks"]["postgres"] for r in results.values() if "postgres" in r.get("checks", {})]
    components: dict[str, Any] = {
        "gateway": {"ready": True},
        **results,
        "postgres": {"ready": bool(postgres) and all(postgres), "reported_by": len(postgres)},
        "nats": {"ready": nats_connected},
    }
    ready = all(c["ready"] for c in components.values())
    return ready, {"status": "ok" if ready else "degraded", "components": components}
