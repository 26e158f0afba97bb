"""The gateway over real sockets: routing, identity translation, streaming, failures, CSRF."""

from __future__ import annotations

import asyncio

import httpx

from icp_gateway.csrf import is_cross_site_write
from icp_gateway.routes_table import ROUTES, owner_of

from .conftest import ORG1, USER1, GatewayUnderTest


async def test_public_health_contract(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_detailed_health_names_every_component(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/health", params={"detail": "true"})
        same = await client.get("/api/health/detail")
    components = response.json()["components"]
    assert {"gateway", "identity", "pipelines", "agent", "postgres", "nats"} <= set(components)
    assert components["nats"]["ready"] is True
    assert components["agent"]["ready"] is False  # nothing listens there
    assert response.status_code == 503 and same.json()["components"].keys() == components.keys()


async def test_signed_identity_reaches_the_service(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/sources/", headers={"cookie": "session_token=good"})
    identity = response.json()["identity"]
    assert (identity["state"], identity["user_id"], identity["role"], identity["org_id"]) == (
        "ok",
        USER1,
        "editor",
        ORG1,
    )


async def test_the_assertion_is_bound_to_the_service_it_is_forwarded_to(gateway: GatewayUnderTest) -> None:
    """What pipelines receives cannot be replayed to identity (and the other way round)."""
    import pytest

    from icp_common.errors import Unauthenticated
    from icp_common.identity import IdentitySigner

    from .conftest import SECRET

    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await client.get("/api/sources/", headers={"cookie": "session_token=good"})
        to_pipelines = gateway.upstream.seen[-1]["headers"]["x-interloper-identity"]
        await client.get("/api/organisations", headers={"cookie": "session_token=good"})
        to_identity = gateway.upstream.seen[-1]["headers"]["x-interloper-identity"]
    pipelines, identity = IdentitySigner(SECRET, audience="pipelines"), IdentitySigner(SECRET, audience="identity")
    assert pipelines.verify(to_pipelines).user_id == identity.verify(to_identity).user_id == USER1
    with pytest.raises(Unauthenticated):
        identity.verify(to_pipelines)
    with pytest.raises(Unauthenticated):
        pipelines.verify(to_identity)


async def test_no_cookie_is_anonymous_without_asking_identity(gateway: GatewayUnderTest) -> None:
    before = gateway.identity.calls
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/sources/")
    assert response.json()["identity"]["state"] == "anonymous"
    assert gateway.identity.calls == before


async def test_unknown_session_is_invalid(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/jobs/", headers={"cookie": "session_token=stolen"})
    assert response.json()["identity"]["state"] == "invalid"


async def test_identity_header_from_outside_is_replaced(gateway: GatewayUnderTest) -> None:
    from .conftest import SIGNER

    forged = SIGNER.sign(
        __import__("icp_common.identity", fromlist=["Identity"]).Identity(state="ok", user_id="root"),
        audience="pipelines",
    )
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/sources/", headers={"x-interloper-identity": forged})
    assert response.json()["identity"]["state"] == "anonymous"


async def test_host_query_and_forwarded_headers(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get(
            "/api/runs/?limit=5&status=failed",
            headers={"host": "interloper.example", "x-forwarded-proto": "https"},
        )
    body = response.json()
    assert body["query"] == "limit=5&status=failed"
    seen = gateway.upstream.seen[-1]["headers"]
    assert seen["host"] == "interloper.example"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert len(seen["x-request-id"]) == 32
    assert response.headers["x-request-id"] == seen["x-request-id"]


async def test_every_set_cookie_is_kept(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/auth/me")
    assert sorted(c.split(";")[0] for c in response.headers.get_list("set-cookie")) == ["a=1", "b=2"]
    assert len(response.headers.get_list("date")) == 1


async def test_large_upload_is_streamed_through(gateway: GatewayUnderTest) -> None:
    payload = b"x" * (1024 * 1024)  # the largest body allowed (test_edge: beyond it, 413)

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post("/api/resources/", content=chunks())
    assert response.json()["body_length"] == len(payload)


async def test_streams_are_not_buffered_and_client_disconnect_closes_upstream(gateway: GatewayUnderTest) -> None:
    gateway.upstream.release.clear()
    gateway.upstream.stream_closed.clear()
    async with (
        httpx.AsyncClient(base_url=gateway.url) as client,
        client.stream("GET", "/api/sources/stream") as response,
    ):
        first = await asyncio.wait_for(response.aiter_raw().__anext__(), 5)
        assert first == b"data: first\n\n"  # arrived while the upstream still holds the stream open
    # The client went away: the gateway must close the upstream stream.
    await asyncio.wait_for(gateway.upstream.stream_closed.wait(), 5)


async def test_service_down_is_a_json_503(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/agent/sessions")
    assert response.status_code == 503
    assert response.json() == {"detail": "Service unavailable: agent"}
    assert response.headers["retry-after"] == "1"


async def test_unknown_api_path_is_404(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/nothing-here")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def test_cross_site_write_with_cookie_is_refused(gateway: GatewayUnderTest) -> None:
    count = len(gateway.upstream.seen)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        refused = await client.post(
            "/api/jobs/", headers={"cookie": "session_token=good", "origin": "https://evil.example"}
        )
        same_origin = await client.post("/api/jobs/", headers={"cookie": "session_token=good", "origin": gateway.url})
        script = await client.post("/api/jobs/", headers={"cookie": "session_token=good"})
    assert (refused.status_code, refused.json()) == (403, {"detail": "Cross-site request refused"})
    assert same_origin.status_code == 200 and script.status_code == 200
    assert len(gateway.upstream.seen) == count + 2


def test_csrf_rules() -> None:
    allowed = frozenset({"https://app.example"})
    own = "https://api.example"
    assert not is_cross_site_write("GET", True, {"origin": "https://evil"}, own, allowed)
    assert not is_cross_site_write("POST", False, {"origin": "https://evil"}, own, allowed)
    assert is_cross_site_write("POST", True, {"origin": "https://evil"}, own, allowed)
    assert is_cross_site_write("DELETE", True, {"origin": "null"}, own, allowed)
    assert is_cross_site_write("POST", True, {"sec-fetch-site": "cross-site"}, own, allowed)
    assert not is_cross_site_write("POST", True, {"origin": "https://app.example/"}, own, allowed)
    assert not is_cross_site_write("PUT", True, {"origin": "https://API.example"}, own, allowed)


def test_route_table() -> None:
    assert owner_of("/api/auth/me") == "identity"
    assert owner_of("/api/organisations") == "identity"
    assert owner_of("/api/tokens") == owner_of("/api/tokens/x") == "identity"
    assert owner_of("/api/sources") == "pipelines"
    # An organisation's alert rules live in notifications; nothing else under the prefix does.
    assert owner_of("/api/organisations/0b7c/alerts") == owner_of("/api/organisations/0b7c/alerts/") == "notifications"
    assert owner_of("/api/organisations/alerts") == owner_of("/api/organisations/a/b/alerts") == "identity"
    assert owner_of("/api/organisations/members") == owner_of("/api/organisations//alerts") == "identity"
    assert owner_of("/api/agent/sessions/x/chat") == "agent"
    assert owner_of("/api/sourcesX") is None
    assert owner_of("/api/health") is None
    assert owner_of("/api/runs/1/logs") == owner_of("/api/sources/") == "pipelines"
    assert owner_of("/api//sources") is owner_of("/apix/sources") is owner_of("/api/") is None
    # owner_of is one lookup of the path's first two segments: every prefix must be one.
    assert all(prefix.startswith("/api/") and "/" not in prefix[5:] for prefix in ROUTES)


async def test_upstream_cookies_are_never_replayed_to_other_requests(gateway: GatewayUnderTest) -> None:
    """The shared upstream client must not keep a cookie jar: the echo service sets cookies
    on every answer, and a later request without cookies must reach it without any."""
    async with httpx.AsyncClient(base_url=gateway.url) as first:
        await first.get("/api/auth/me")
    async with httpx.AsyncClient(base_url=gateway.url) as second:
        await second.get("/api/sources/")
    assert "cookie" not in gateway.upstream.seen[-1]["headers"]


async def test_the_web_ui_is_served_with_spa_fallback(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        index = await client.get("/")
        deep_link = await client.get("/executions/some-run-id")
        traversal = await client.get("/../../etc/passwd")
        api_unknown = await client.get("/api/unknown")
        nuxt_asset = index.text.split('src="/_nuxt/')[1].split('"')[0]
        asset = await client.get(f"/_nuxt/{nuxt_asset}")
        post = await client.post("/")
    assert index.status_code == 200 and "<html" in index.text.lower()
    assert index.headers["cache-control"] == "no-cache"
    assert deep_link.status_code == 200 and deep_link.text == index.text  # the SPA router takes over
    assert traversal.text == index.text
    assert api_unknown.status_code == 404 and api_unknown.json() == {"detail": "Not Found"}
    assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert post.status_code == 405


async def test_probes_are_not_shadowed_by_the_web_ui(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert ready.json()["service"] == "gateway"
    assert "icp_http_requests_total" in metrics.text


async def test_a_nul_character_in_a_path_is_a_400(gateway: GatewayUnderTest) -> None:
    count = len(gateway.upstream.seen)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for path in ("/%00", "/_nuxt/%00.js", "/api/agent/sessions/%00", "/api/sources/a%00b"):
            response = await client.get(path)
            assert (response.status_code, response.json()) == (400, {"detail": "Invalid path"}), path
    assert len(gateway.upstream.seen) == count  # never forwarded
