"""What the gateway refuses or hides from the outside: oversized bodies (before authentication),
internal paths asked through the public edge, made-up request ids and hosts, an empty cookie."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx

from icp_common.web import MAX_BODY_BYTES

from .conftest import GatewayUnderTest

EDGE = {"X-Interloper-Edge": "public"}  # what Traefik adds to every public request


async def test_declared_oversized_body_is_refused_before_authentication(gateway: GatewayUnderTest) -> None:
    calls, seen = gateway.identity.calls, len(gateway.upstream.seen)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(
            "/api/resources/", content=b"x" * (MAX_BODY_BYTES + 1), headers={"cookie": "session_token=good"}
        )
    assert (response.status_code, response.json()) == (413, {"detail": "Content Too Large"})
    assert gateway.identity.calls == calls, "no Authenticate call for a refused body"
    assert len(gateway.upstream.seen) == seen


async def test_chunked_oversized_body_is_cut_and_never_reaches_the_service_whole(gateway: GatewayUnderTest) -> None:
    marker = f"/api/resources/{uuid.uuid4().hex}"
    # Valid JSON followed by blanks: had the gateway ended the body at the limit, the service
    # would have received a complete, valid request.
    payload = b'{"name": "x"}' + b" " * (2 * MAX_BODY_BYTES)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(marker, content=chunks())
    assert (response.status_code, response.json()) == (413, {"detail": "Content Too Large"})
    await asyncio.sleep(0.2)  # let the service notice the aborted request
    assert not [seen for seen in gateway.upstream.seen if seen["path"] == marker]


async def test_a_body_within_the_limit_is_relayed(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post("/api/resources/", content=b"x" * MAX_BODY_BYTES)
    assert response.json()["body_length"] == MAX_BODY_BYTES


async def test_internal_paths_are_hidden_from_the_edge(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for path in ("/metrics", "/readyz", "/healthz", "/api/health/detail", "/metrics/"):
            response = await client.get(path, headers=EDGE)
            assert (response.status_code, response.json()) == (404, {"detail": "Not Found"}), path
            assert (await client.get(path.rstrip("/"))).status_code in (200, 503), f"{path} on the gateway's port"
        response = await client.get("/api/health", params={"detail": "true"}, headers=EDGE)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        assert "components" in (await client.get("/api/health", params={"detail": "true"})).json()


async def test_traefiks_413_page_is_our_json(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/edge/errors/413")
    assert (response.status_code, response.json()) == (413, {"detail": "Content Too Large"})


async def test_request_id_from_the_client_is_kept_only_when_short_and_plain(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        kept = await client.get("/api/sources/", headers={"X-Request-Id": "abc-123.X_y"})
        long = await client.get("/api/sources/", headers={"X-Request-Id": "a" * 3000})
        odd = await client.get("/api/sources/", headers={"X-Request-Id": "a b<script>"})
    assert kept.headers["x-request-id"] == "abc-123.X_y"
    assert gateway.upstream.seen[-3]["headers"]["x-request-id"] == "abc-123.X_y"
    for response, seen in ((long, gateway.upstream.seen[-2]), (odd, gateway.upstream.seen[-1])):
        minted = response.headers["x-request-id"]
        assert len(minted) == 32 and minted.isalnum()
        assert seen["headers"]["x-request-id"] == minted


async def test_redirects_never_name_the_clients_host(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/health/", headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "/api/health"


async def test_empty_session_cookie_is_no_cookie(gateway: GatewayUnderTest) -> None:
    calls = gateway.identity.calls
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/sources/", headers={"cookie": "session_token="})
        quoted = await client.get("/api/sources/", headers={"cookie": 'session_token=""'})
    assert response.json()["identity"]["state"] == "anonymous"
    assert quoted.json()["identity"]["state"] == "anonymous"
    assert gateway.identity.calls == calls
