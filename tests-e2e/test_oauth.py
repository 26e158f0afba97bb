"""Ad-platform OAuth and the external look-ups end to end: client -> Traefik -> gateway -> pipelines
-> a fake provider server (every INTERLOPER_OAUTH_*_URL points at it), on a small stack of its own.

Half of the provider apps are given with the reference's variable names (`AMAZON_CLIENT_ID`, ...),
the other half as `INTERLOPER_OAUTH_*`; the stack runs the demo catalog (its `demo_ads_connection`
declares the Google `x-oauth` block)."""

from __future__ import annotations

import json
import os
import shlex
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_pipelines.oauth.settings import PROVIDERS
from icp_stack.ports import free_port
from icp_stack.pytest_plugin import (
    STACK_ARGS_ENV,
    StackHandle,
    infra_tmp_dir,
    remove_infra_tmp_dir,
    start_stack,
    stop_stack_process,
)
from icp_testing.fake_providers import (
    DEVELOPER_TOKEN,
    GOOD_CODE,
    GRAPH_TOKEN,
    REFRESH_TOKEN,
    TIKTOK_TOKEN,
    FakeProviders,
    serve_in_thread,
)

ONLY_WHAT_OAUTH_NEEDS = "pipelines-scheduler,pipelines-worker,notifications,agent"
PROVIDER_TIMEOUT = 2.0
APP = {"client_id": "app-id", "client_secret": "app-secret", "refresh_token": REFRESH_TOKEN}

# route -> (body as the web UI posts it: the connection's data plus form fields, expected answer)
LOOKUPS: dict[str, tuple[dict, list[dict[str, str]]]] = {
    "amazon-ads/profiles": (
        {**APP, "location": "EU", "profile_id": ""},
        [{"profile_id": "2001", "name": "Acme (DE)", "account_id": "A2DE", "country_code": "DE"}],
    ),
    "facebook-ads/accounts": (
        {"access_token": GRAPH_TOKEN, "app_id": "a", "app_secret": "s"},
        [
            {"account_id": "111", "name": "Active one"},
            {"account_id": "333", "name": "333"},
            {"account_id": "555", "name": "On the last page"},
        ],
    ),
    "google-ads/customers": (
        {**APP, "developer_token": DEVELOPER_TOKEN},
        [
            {"customer_id": "1111111111", "name": "Acme Ads (1111111111)"},
            {"customer_id": "2222222222", "name": "Beta Brand (2222222222)"},
            {"customer_id": "3333333333", "name": "3333333333"},
            {"customer_id": "4444444444", "name": "4444444444"},
            {"customer_id": "5555555555", "name": "Echo (5555555555)"},
        ],
    ),
    "pinterest-ads/accounts": (
        APP,
        [
            {"id": "549755885175", "name": "Pin One"},
            {"id": "549755885176", "name": "Pin Two"},
            {"id": "549755885177", "name": "549755885177"},
            {"id": "549755885178", "name": "Pin Four"},
            {"id": "549755885179", "name": "Pin Five"},
        ],
    ),
    "snapchat-ads/ad-accounts": (
        APP,
        [{"id": "sa-1", "name": "Snap One"}, {"id": "sa-3", "name": "sa-3"}, {"id": "sa-4", "name": "Snap Four"}],
    ),
    "facebook-insights/pages": (
        {**APP, "refresh_token": GRAPH_TOKEN},
        [
            {"id": "p1", "name": "Page One"},
            {"id": "p2", "name": "Page Two"},
            {"id": "p3", "name": "Page Three"},
            {"id": "p4", "name": "p4"},
        ],
    ),
    "instagram-insights/accounts": (
        {**APP, "refresh_token": GRAPH_TOKEN},
        [{"id": "ig1", "name": "page.one"}, {"id": "ig3", "name": "IG Three"}, {"id": "ig4", "name": "ig4"}],
    ),
    "linkedin-ads/accounts": (
        APP,
        [{"id": "501", "name": "LinkedIn One"}, {"id": "502", "name": "LinkedIn Two"}, {"id": "503", "name": "503"}],
    ),
    "linkedin-organic/organizations": (
        APP,
        [
            {"id": "101", "name": "Org A"},
            {"id": "102", "name": "Org B"},
            {"id": "103", "name": "103"},
            {"id": "104", "name": "Org D"},
        ],
    ),
    "tiktok-ads/advertisers": (
        {"access_token": TIKTOK_TOKEN},
        [{"advertiser_id": "7001", "name": "Tik One"}, {"advertiser_id": "7002", "name": "7002"}],
    ),
}


@pytest.fixture(scope="module")
def fake_providers() -> Iterator[FakeProviders]:
    with serve_in_thread(FakeProviders()) as fake:
        yield fake


@pytest.fixture(scope="module")
def oauth_stack(fake_providers: FakeProviders, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    base = infra_tmp_dir(tmp_path_factory, "oauth-stack")  # PostgreSQL must reach it (as root too)
    ours = {f"{p}_{part}".upper() for p in PROVIDERS for part in ("client_id", "client_secret", "redirect_uri")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_OAUTH_") and k not in ours}
    env |= fake_providers.env(credentials=False)
    for i, (name, value) in enumerate(FakeProviders.credentials().items()):
        env[name.upper() if (i // 3) % 2 == 0 else f"INTERLOPER_OAUTH_{name.upper()}"] = value
    env |= {
        "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS),
        "INTERLOPER_OAUTH_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT),
        "INTERLOPER_OAUTH_CONCURRENCY": "3",
    }
    extra = shlex.split(os.environ.get(STACK_ARGS_ENV, ""))
    handle = start_stack(
        base / "data", free_port(), base / "stack.log", ["--without", ONLY_WHAT_OAUTH_NEEDS, *extra], env=env
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(base)  # kept (with its logs) when anything above failed


@pytest.fixture
def edge(oauth_stack: StackHandle, fake_providers: FakeProviders) -> Iterator[httpx.Client]:
    fake_providers.reset()
    with httpx.Client(base_url=oauth_stack.base_url, timeout=30.0, follow_redirects=False) as client:
        yield client


def sign_in(client: httpx.Client, *, organisation: bool = True) -> None:
    r = client.get("/api/auth/dev-login", params={"email": f"oauth-{uuid.uuid4().hex[:8]}@example.com"})
    assert r.status_code == 302, r.text
    if organisation:
        r = client.post("/api/organisations", json={"name": "Ads"})
        assert r.status_code == 201, r.text


def test_providers_through_the_edge(edge: httpx.Client) -> None:
    r = edge.get("/api/oauth/providers")
    assert r.status_code == 200
    providers = r.json()
    assert [p["key"] for p in providers] == list(PROVIDERS)
    google = next(p for p in providers if p["key"] == "google")
    assert google == {
        "key": "google",
        "client_id": "google-client-id",
        "redirect_uri": "http://ui.example/auth/google",
        "auth_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "label": "Google",
        "icon": "devicon:google",
    }
    assert next(p for p in providers if p["key"] == "linkedin")["client_id"] == "linkedin-client-id"


def test_every_provider_exchanges_a_code_through_the_edge(edge: httpx.Client, fake_providers: FakeProviders) -> None:
    sign_in(edge)
    for provider in PROVIDERS:
        r = edge.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})
        assert r.status_code == 200, (provider, r.text)
        tokens = r.json()
        reference = f"platform:oauth/{provider}/client_secret"  # never the secret itself (issue 15)
        assert (tokens["client_id"], tokens["client_secret"]) == (f"{provider}-client-id", reference)
        assert f"{provider}-client-secret" not in r.text
        assert tokens["access_token"]
    sent = [(r.method, r.upstream, r.content_type) for r in fake_providers.requests]
    assert sent == [
        ("POST", "https://api.amazon.com/auth/o2/token", "application/json"),
        ("POST", "https://api.criteo.com/oauth2/token", "application/json"),
        ("GET", "https://graph.facebook.com/v19.0/oauth/access_token", ""),
        ("POST", "https://oauth2.googleapis.com/token", "application/json"),
        ("POST", "https://www.linkedin.com/oauth/v2/accessToken", "application/x-www-form-urlencoded"),
        ("POST", "https://login.microsoftonline.com/common/oauth2/v2.0/token", "application/x-www-form-urlencoded"),
        ("POST", "https://api.pinterest.com/v5/oauth/token", "application/x-www-form-urlencoded"),
        ("POST", "https://accounts.snapchat.com/login/oauth2/access_token", "application/x-www-form-urlencoded"),
        ("POST", "https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token", "application/json"),
    ]
    assert fake_providers.requests[6].basic_auth == ("pinterest-client-id", "pinterest-client-secret")
    assert fake_providers.requests[8].json == {
        "auth_code": GOOD_CODE,
        "app_id": "tiktok-client-id",
        "secret": "tiktok-client-secret",
    }
    assert fake_providers.requests[2].query == {
        "grant_type": "authorization_code",
        "code": GOOD_CODE,
        "redirect_uri": "http://ui.example/auth/facebook",
        "client_id": "facebook-client-id",
        "client_secret": "facebook-client-secret",
    }


def test_exchange_errors_through_the_edge(edge: httpx.Client, fake_providers: FakeProviders) -> None:
    sign_in(edge)
    r = edge.post("/api/oauth/foo", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (400, {"detail": "Unknown OAuth provider: foo"})
    r = edge.post("/api/oauth/google", json={})
    assert r.status_code == 422
    r = edge.post("/api/oauth/snapchat", json={"code": "stolen"})
    assert r.status_code == 500
    assert r.json()["detail"].startswith('Failed to exchange auth code: {"error":"invalid_grant"')
    fake_providers.script("/oauth2.googleapis.com/token", json={}, delay=PROVIDER_TIMEOUT * 2)
    r = edge.post("/api/oauth/google", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (
        502,
        {"detail": f"Failed to exchange auth code: google did not answer within {PROVIDER_TIMEOUT:g} s"},
    )


def test_the_exchange_needs_an_editor_through_the_edge(oauth_stack: StackHandle, fake_providers: FakeProviders) -> None:
    """Issue 15: without a cookie the exchange answered the platform's client secret."""
    fake_providers.reset()
    with httpx.Client(base_url=oauth_stack.base_url, timeout=30.0) as anonymous:
        r = anonymous.post("/api/oauth/google", json={"code": GOOD_CODE})
        assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
        assert anonymous.get("/api/oauth/providers").status_code == 200  # the list stays public
    with httpx.Client(base_url=oauth_stack.base_url, timeout=30.0) as no_org:
        sign_in(no_org, organisation=False)
        r = no_org.post("/api/oauth/google", json={"code": GOOD_CODE})
        assert (r.status_code, r.json()) == (400, {"detail": "No organisation selected"})
    assert fake_providers.requests == []


def test_the_connect_flow_of_the_web_ui_through_the_edge(edge: httpx.Client, fake_providers: FakeProviders) -> None:
    """What the UI does after the provider's popup: exchange the code, copy every `x-oauth.fields`
    key of the answer into the connection form, save it, read it back for the edit form, and use it
    for an `x-fetch` look-up. The platform's secret appears in no answer, yet reaches the provider."""
    sign_in(edge)
    oauth = edge.get("/api/specs").json()["demo_ads_connection"]["config_schema"]["x-oauth"]
    assert oauth["provider"] == "google"
    assert any(p["key"] == "google" for p in edge.get("/api/oauth/providers").json())
    r = edge.post("/api/oauth/google", json={"code": GOOD_CODE})
    assert r.status_code == 200, r.text
    tokens = r.json()
    data = {field: tokens[key] for key, field in oauth["fields"].items() if tokens.get(key) is not None}
    assert set(data) == {"client_id", "client_secret", "refresh_token"}
    body = {"kind": "connection", "key": "demo_ads_connection", "name": "Google", "data": data, "encrypted": False}
    r = edge.post("/api/resources/", json=body)
    assert r.status_code == 200, r.text
    stored = edge.get(f"/api/resources/{r.json()['id']}")
    assert stored.json()["data"] == data  # the reference, never expanded
    # The fake only refreshes its own REFRESH_TOKEN; the form adds the developer token.
    lookup = {**stored.json()["data"], "refresh_token": REFRESH_TOKEN, "developer_token": DEVELOPER_TOKEN}
    r = edge.post("/api/external/google-ads/customers", json=lookup)
    assert r.status_code == 200, r.text
    for answer in (tokens, stored.json(), r.json()):
        assert "google-client-secret" not in json.dumps(answer)
    exchange, refresh = fake_providers.to("/oauth2.googleapis.com/token")
    assert exchange.json["client_secret"] == refresh.form["client_secret"] == "google-client-secret"


def test_every_lookup_through_the_edge(edge: httpx.Client, fake_providers: FakeProviders) -> None:
    sign_in(edge)
    for route, (body, expected) in LOOKUPS.items():
        r = edge.post(f"/api/external/{route}", json=body)
        assert (r.status_code, r.json()) == (200, expected), route
    hosts = {r.upstream.split("/")[2] for r in fake_providers.requests}
    assert hosts == {
        "api.amazon.co.uk",
        "advertising-api-eu.amazon.com",
        "graph.facebook.com",
        "oauth2.googleapis.com",
        "googleads.googleapis.com",
        "api.pinterest.com",
        "accounts.snapchat.com",
        "adsapi.snapchat.com",
        "www.linkedin.com",
        "api.linkedin.com",
        "business-api.tiktok.com",
    }
    assert 1 < fake_providers.max_in_flight["google-search"] <= 3


def test_lookups_need_a_member_of_an_organisation(oauth_stack: StackHandle, fake_providers: FakeProviders) -> None:
    fake_providers.reset()
    body = LOOKUPS["pinterest-ads/accounts"][0]
    with httpx.Client(base_url=oauth_stack.base_url, timeout=30.0) as anonymous:
        r = anonymous.post("/api/external/pinterest-ads/accounts", json=body)
        assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    with httpx.Client(base_url=oauth_stack.base_url, timeout=30.0) as no_org:
        sign_in(no_org, organisation=False)
        r = no_org.post("/api/external/pinterest-ads/accounts", json=body)
        assert (r.status_code, r.json()) == (400, {"detail": "No organisation selected"})
    assert fake_providers.requests == []


def test_lookup_failures_through_the_edge(edge: httpx.Client, fake_providers: FakeProviders) -> None:
    sign_in(edge)
    body = LOOKUPS["snapchat-ads/ad-accounts"][0]
    for status, detail in [
        (401, "Authorization failed while fetching Snapchat Ads ad accounts."),
        (403, "Authorization failed while fetching Snapchat Ads ad accounts."),
        (404, "Resource not found while fetching Snapchat Ads ad accounts."),
        (500, "Failed fetching Snapchat Ads ad accounts."),
    ]:
        fake_providers.script("/adsapi.snapchat.com/v1/me/organizations", status=status, json={"error": "x"})
        r = edge.post("/api/external/snapchat-ads/ad-accounts", json=body)
        assert (r.status_code, r.json()) == (status, {"detail": detail})
    fake_providers.script("/adsapi.snapchat.com/v1/me/organizations", json={}, delay=PROVIDER_TIMEOUT * 2)
    started = time.monotonic()
    r = edge.post("/api/external/snapchat-ads/ad-accounts", json=body)
    assert (r.status_code, r.json()) == (502, {"detail": "Provider timed out while fetching Snapchat Ads ad accounts."})
    assert time.monotonic() - started < PROVIDER_TIMEOUT * 2
    r = edge.post("/api/external/snapchat-ads/ad-accounts", json={"client_id": "x"})
    assert r.status_code == 422
