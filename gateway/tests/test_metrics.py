"""The gateway's request metrics: owning service and route template, never the raw path."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from prometheus_client import REGISTRY

from icp_gateway.route_labels import SPA_ROUTE, UNKNOWN_ROUTE, RouteLabels

from .conftest import GatewayUnderTest


def count(upstream: str, route: str, status: str, method: str = "GET") -> float:
    labels = {"upstream": upstream, "method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("icp_gateway_requests_total", labels) or 0.0


async def test_proxied_requests_are_labelled_by_owner_and_template(gateway: GatewayUnderTest) -> None:
    labels: RouteLabels = gateway.app.route_labels  # type: ignore[attr-defined]
    async with asyncio.timeout(10):  # learnt from the upstream's OpenAPI at start-up
        while not labels.known("pipelines"):
            await asyncio.sleep(0.05)
    one, run = (
        count("pipelines", "/api/sources/{source_id}", "200"),
        count("pipelines", "/api/jobs/{job_id}/run", "200"),
    )
    listing, unknown = count("pipelines", "/api/sources/", "200"), count("pipelines", UNKNOWN_ROUTE, "200")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for _ in range(3):
            assert (await client.get(f"/api/sources/{uuid.uuid4()}")).status_code == 200
        assert (await client.post(f"/api/jobs/{uuid.uuid4()}/run")).status_code == 200
        assert (await client.get("/api/sources")).status_code == 200  # both spellings, one label
        assert (await client.get("/api/sources/")).status_code == 200
        for _ in range(5):  # made-up paths: one fixed label, however many
            assert (await client.get(f"/api/sources/{uuid.uuid4()}/x/{uuid.uuid4()}")).status_code == 200
        text = (await client.get("/metrics")).text
    assert count("pipelines", "/api/sources/{source_id}", "200") == one + 3
    assert count("pipelines", "/api/jobs/{job_id}/run", "200", "POST") >= 1 and run == 0
    assert count("pipelines", "/api/sources/", "200") == listing + 2
    assert count("pipelines", UNKNOWN_ROUTE, "200") == unknown + 5
    assert 'route="unmatched",status="200",upstream="pipelines"' not in text
    assert not [line for line in text.splitlines() if line.startswith("icp_gateway_requests_total") and "/x/" in line]


async def test_the_gateways_own_routes_keep_their_templates(gateway: GatewayUnderTest) -> None:
    before = count("gateway", "/api/health", "200")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await client.get("/api/health")
    assert count("gateway", "/api/health", "200") == before + 1


def test_route_labels_prefer_a_literal_segment_and_refuse_the_rest() -> None:
    labels = RouteLabels()
    labels.learn("pipelines", ["/api/jobs/{job_id}", "/api/jobs/{job_id}/run", "/api/jobs/stats", "/api/runs/"])
    assert labels.label("pipelines", "/api/jobs/stats") == "/api/jobs/stats"
    assert labels.label("pipelines", "/api/jobs/abc") == "/api/jobs/{job_id}"
    assert labels.label("pipelines", "/api/jobs/abc/run/") == "/api/jobs/{job_id}/run"
    assert labels.label("pipelines", "/api/runs") == "/api/runs/"
    assert labels.label("pipelines", "/api/jobs//run") == UNKNOWN_ROUTE
    assert labels.label("pipelines", "/api/jobs/abc/nope") == UNKNOWN_ROUTE
    assert labels.label("identity", "/api/auth/me") == UNKNOWN_ROUTE  # not learnt
    assert SPA_ROUTE != UNKNOWN_ROUTE


async def test_a_made_up_method_adds_no_series(gateway: GatewayUnderTest) -> None:
    """The method is the client's choice: any method but the standard ones is one label."""

    def others() -> float:
        return sum(
            sample.value
            for metric in REGISTRY.collect()
            if metric.name == "icp_gateway_requests"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["method"] == "OTHER"
        )

    before = others()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for method in ("PROPFIND", "PURGE", "MKCOL"):  # parsed by uvicorn, passed on to the app
            await client.request(method, "/api/sources/")
        text = (await client.get("/metrics")).text
    assert others() == before + 3
    assert not [line for line in text.splitlines() if "PROPFIND" in line or "PURGE" in line]
