"""`/api/external/*` against the fake provider server: the requests each look-up sends, the mapping
of pages and filters, the error mapping (401/403/404/500/timeouts) and RBAC."""

from __future__ import annotations

from typing import Any

import pytest

from icp_common.identity import Identity
from icp_pipelines.oauth.secret_ref import secret_ref
from icp_testing.fake_providers import (
    ACCESS_TOKEN,
    DEVELOPER_TOKEN,
    GRAPH_TOKEN,
    REFRESH_TOKEN,
    TIKTOK_TOKEN,
    FakeProviders,
)

from ..conftest import World
from ..oauth.conftest import CONCURRENCY, TIMEOUT, client

FORM = "application/x-www-form-urlencoded"
BEARER = f"Bearer {ACCESS_TOKEN}"
APP = {"client_id": "app-id", "client_secret": "app-secret", "refresh_token": REFRESH_TOKEN}
REFRESH_FORM = {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN, **APP}
GOOGLE_QUERY = "SELECT customer.id, customer.descriptive_name, customer.status FROM customer LIMIT 1"

# route -> (a valid body, the path of its first upstream call, its context string)
ROUTES: dict[str, tuple[dict[str, Any], str, str]] = {
    "amazon-ads/profiles": (APP, "/api.amazon.com/auth/o2/token", "fetching Amazon Ads profiles"),
    "facebook-ads/accounts": (
        {"access_token": GRAPH_TOKEN},
        "/graph.facebook.com/v21.0/me/adaccounts",
        "fetching Facebook Ads accounts",
    ),
    "google-ads/customers": (
        {**APP, "developer_token": DEVELOPER_TOKEN},
        "/oauth2.googleapis.com/token",
        "fetching Google Ads customers",
    ),
    "pinterest-ads/accounts": (APP, "/api.pinterest.com/v5/oauth/token", "fetching Pinterest Ads accounts"),
    "snapchat-ads/ad-accounts": (
        APP,
        "/accounts.snapchat.com/login/oauth2/access_token",
        "fetching Snapchat Ads ad accounts",
    ),
    "facebook-insights/pages": (
        {**APP, "refresh_token": GRAPH_TOKEN},
        "/graph.facebook.com/v21.0/me/accounts",
        "fetching Facebook pages",
    ),
    "instagram-insights/accounts": (
        {**APP, "refresh_token": GRAPH_TOKEN},
        "/graph.facebook.com/v21.0/me/accounts",
        "fetching Instagram accounts",
    ),
    "linkedin-ads/accounts": (APP, "/www.linkedin.com/oauth/v2/accessToken", "fetching LinkedIn Ads accounts"),
    "linkedin-organic/organizations": (
        APP,
        "/www.linkedin.com/oauth/v2/accessToken",
        "fetching LinkedIn organizations",
    ),
    "tiktok-ads/advertisers": (
        {"access_token": TIKTOK_TOKEN},
        "/business-api.tiktok.com/open_api/v1.3/oauth2/advertiser/get/",
        "fetching TikTok Ads advertisers",
    ),
}


def summary(fake: FakeProviders) -> list[tuple[str, str]]:
    return [(r.method, r.upstream) for r in fake.requests]


def assert_refresh(fake: FakeProviders, path: str, *, basic: bool = False) -> None:
    token = fake.to(path)
    assert len(token) == 1
    assert token[0].method == "POST"
    assert token[0].content_type == FORM
    if basic:
        assert token[0].form == {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
        assert token[0].basic_auth == ("app-id", "app-secret")
    else:
        assert token[0].form == REFRESH_FORM
        assert "authorization" not in token[0].headers


# ------------------------------------------------------------------------------- look-ups


@pytest.mark.parametrize(
    ("location", "auth", "api", "expected"),
    [
        (
            "NA",
            "api.amazon.com",
            "advertising-api.amazon.com",
            [
                {"profile_id": "1001", "name": "Acme (US)", "account_id": "A1US", "country_code": "US"},
                {"profile_id": "1002", "name": "Acme (CA)", "account_id": "A1CA", "country_code": "CA"},
            ],
        ),
        (
            "EU",
            "api.amazon.co.uk",
            "advertising-api-eu.amazon.com",
            [{"profile_id": "2001", "name": "Acme (DE)", "account_id": "A2DE", "country_code": "DE"}],
        ),
        (
            "FE",
            "api.amazon.co.jp",
            "advertising-api-fe.amazon.com",
            [{"profile_id": "3001", "name": "Acme (JP)", "account_id": "A3JP", "country_code": "JP"}],
        ),
        ("XX", "api.amazon.com", "advertising-api.amazon.com", None),
    ],
)
async def test_amazon_ads_profiles_by_location(
    viewer, fake: FakeProviders, location: str, auth: str, api: str, expected: list[dict[str, str]] | None
) -> None:
    r = await viewer.post("/api/external/amazon-ads/profiles", json={**APP, "location": location, "other": 1})
    assert r.status_code == 200, r.text
    if expected is not None:
        assert r.json() == expected
    assert summary(fake) == [("POST", f"https://{auth}/auth/o2/token"), ("GET", f"https://{api}/v2/profiles")]
    assert_refresh(fake, f"/{auth}/")
    profiles = fake.to(f"/{api}/")[0]
    assert profiles.headers["authorization"] == BEARER
    assert profiles.headers["amazon-advertising-api-clientid"] == "app-id"


async def test_amazon_location_defaults_to_north_america(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/amazon-ads/profiles", json=APP)
    assert [p["country_code"] for p in r.json()] == ["US", "CA"]


async def test_facebook_ads_accounts_active_only_across_pages(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/facebook-ads/accounts", json={"access_token": GRAPH_TOKEN, "app_id": "1"})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"account_id": "111", "name": "Active one"},
        {"account_id": "333", "name": "333"},
        {"account_id": "555", "name": "On the last page"},
    ]
    first = {"access_token": GRAPH_TOKEN, "fields": "account_id,name,account_status", "limit": "500"}
    assert [(r.upstream, r.query) for r in fake.requests] == [
        ("https://graph.facebook.com/v21.0/me/adaccounts", first),
        ("https://graph.facebook.com/v21.0/me/adaccounts", {**first, "after": "c2"}),
        ("https://graph.facebook.com/v21.0/me/adaccounts", {**first, "after": "c4"}),
    ]


async def test_google_ads_customers_named_concurrently(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/google-ads/customers", json={**APP, "developer_token": DEVELOPER_TOKEN})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"customer_id": "1111111111", "name": "Acme Ads (1111111111)"},
        {"customer_id": "2222222222", "name": "Beta Brand (2222222222)"},
        {"customer_id": "3333333333", "name": "3333333333"},  # the search was refused
        {"customer_id": "4444444444", "name": "4444444444"},  # no row
        {"customer_id": "5555555555", "name": "Echo (5555555555)"},
    ]
    assert_refresh(fake, "/oauth2.googleapis.com/")
    [listing] = fake.to("/googleads.googleapis.com/v20/customers:listAccessibleCustomers")
    searches = fake.to("/googleads.googleapis.com/v20/customers/")
    assert listing.method == "GET"
    assert sorted(s.upstream for s in searches) == [
        f"https://googleads.googleapis.com/v20/customers/{c}/googleAds:searchStream"
        for c in ("1111111111", "2222222222", "3333333333", "4444444444", "5555555555")
    ]
    for call in (listing, *searches):
        assert (call.headers["authorization"], call.headers["developer-token"]) == (BEARER, DEVELOPER_TOKEN)
    assert all(s.method == "POST" and s.json == {"query": GOOGLE_QUERY} for s in searches)
    assert 1 < fake.max_in_flight["google-search"] <= CONCURRENCY


async def test_pinterest_ads_accounts_follow_every_bookmark(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/pinterest-ads/accounts", json=APP)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "549755885175", "name": "Pin One"},
        {"id": "549755885176", "name": "Pin Two"},
        {"id": "549755885177", "name": "549755885177"},
        {"id": "549755885178", "name": "Pin Four"},
        {"id": "549755885179", "name": "Pin Five"},
    ]
    assert_refresh(fake, "/api.pinterest.com/v5/oauth/token", basic=True)
    pages = fake.to("/api.pinterest.com/v5/ad_accounts")
    assert [p.query for p in pages] == [
        {"page_size": "100"},
        {"page_size": "100", "bookmark": "bm2"},
        {"page_size": "100", "bookmark": "bm4"},
    ]
    assert all(p.headers["authorization"] == BEARER for p in pages)


async def test_snapchat_ad_accounts_active_only_in_every_organisation(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/snapchat-ads/ad-accounts", json=APP)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "sa-1", "name": "Snap One"},
        {"id": "sa-3", "name": "sa-3"},
        {"id": "sa-4", "name": "Snap Four"},
    ]
    assert_refresh(fake, "/accounts.snapchat.com/")
    calls = fake.to("/adsapi.snapchat.com/")
    assert sorted(c.upstream for c in calls) == [
        "https://adsapi.snapchat.com/v1/me/organizations",
        "https://adsapi.snapchat.com/v1/organizations/org-1/adaccounts",
        "https://adsapi.snapchat.com/v1/organizations/org-2/adaccounts",
    ]
    assert all(c.method == "GET" and c.headers["authorization"] == BEARER for c in calls)


async def test_facebook_insights_pages(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/facebook-insights/pages", json={**APP, "refresh_token": GRAPH_TOKEN})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "p1", "name": "Page One"},
        {"id": "p2", "name": "Page Two"},
        {"id": "p3", "name": "Page Three"},
        {"id": "p4", "name": "p4"},
    ]
    first = {"access_token": GRAPH_TOKEN, "fields": "id,name", "limit": "100"}
    assert [r.query for r in fake.requests] == [first, {**first, "after": "c2"}]


async def test_instagram_insights_accounts_of_pages_that_have_one(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/instagram-insights/accounts", json={**APP, "refresh_token": GRAPH_TOKEN})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "ig1", "name": "page.one"},
        {"id": "ig3", "name": "IG Three"},
        {"id": "ig4", "name": "ig4"},
    ]
    first = {"access_token": GRAPH_TOKEN, "fields": "name,instagram_business_account{id,username,name}", "limit": "100"}
    assert [(r.upstream, r.query) for r in fake.requests] == [
        ("https://graph.facebook.com/v21.0/me/accounts", first),
        ("https://graph.facebook.com/v21.0/me/accounts", {**first, "after": "c2"}),
    ]


async def test_linkedin_ads_accounts_follow_the_page_token(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/linkedin-ads/accounts", json=APP)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "501", "name": "LinkedIn One"},
        {"id": "502", "name": "LinkedIn Two"},
        {"id": "503", "name": "503"},
    ]
    assert_refresh(fake, "/www.linkedin.com/oauth/v2/accessToken")
    pages = fake.to("/api.linkedin.com/rest/adAccounts")
    assert [p.query for p in pages] == [
        {"q": "search", "pageSize": "100"},
        {"q": "search", "pageSize": "100", "pageToken": "t2"},
    ]
    for page in pages:
        assert (page.headers["authorization"], page.headers["linkedin-version"]) == (BEARER, "202607")
        assert page.headers["x-restli-protocol-version"] == "2.0.0"


async def test_linkedin_organizations_administered_with_their_names(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/linkedin-organic/organizations", json=APP)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"id": "101", "name": "Org A"},
        {"id": "102", "name": "Org B"},
        {"id": "103", "name": "103"},
        {"id": "104", "name": "Org D"},
    ]
    acl = {"q": "roleAssignee", "role": "ADMINISTRATOR", "state": "APPROVED", "count": "100"}
    assert [p.query for p in fake.to("/api.linkedin.com/rest/organizationAcls")] == [
        {**acl, "start": "0"},
        {**acl, "start": "2"},
    ]
    [names] = fake.to("/api.linkedin.com/rest/organizations")
    assert names.query_string == "ids=List(101,102,103,104)"


async def test_linkedin_organizations_without_names_when_the_lookup_is_refused(viewer, fake: FakeProviders) -> None:
    fake.script("/api.linkedin.com/rest/organizations", status=403, json={"status": 403})
    r = await viewer.post("/api/external/linkedin-organic/organizations", json=APP)
    assert r.json() == [{"id": i, "name": i} for i in ("101", "102", "103", "104")]


async def test_tiktok_ads_advertisers_with_the_platform_app(viewer, fake: FakeProviders) -> None:
    r = await viewer.post("/api/external/tiktok-ads/advertisers", json={"access_token": TIKTOK_TOKEN})
    assert r.status_code == 200, r.text
    assert r.json() == [{"advertiser_id": "7001", "name": "Tik One"}, {"advertiser_id": "7002", "name": "7002"}]
    [call] = fake.requests
    assert (call.method, call.upstream) == (
        "GET",
        "https://business-api.tiktok.com/open_api/v1.3/oauth2/advertiser/get/",
    )
    assert call.query == {"app_id": "tiktok-client-id", "secret": "tiktok-client-secret"}
    assert call.headers["access-token"] == TIKTOK_TOKEN


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("status", [401, 403, 404, 500, 429])
@pytest.mark.parametrize("route", ROUTES)
async def test_error_mapping(viewer, fake: FakeProviders, route: str, status: int) -> None:
    body, first_call, context = ROUTES[route]
    fake.script(first_call, status=status, json={"error": {"message": "nope"}})
    r = await viewer.post(f"/api/external/{route}", json=body)
    expected = {
        401: (401, f"Authorization failed while {context}."),
        403: (403, f"Authorization failed while {context}."),
        404: (404, f"Resource not found while {context}."),
    }.get(status, (500, f"Failed {context}."))
    assert (r.status_code, r.json()) == (expected[0], {"detail": expected[1]})


@pytest.mark.parametrize(
    ("path", "route", "body"),
    [
        ("/api.amazon.com/auth/o2/token", "amazon-ads/profiles", {**APP, "refresh_token": "revoked"}),
        ("/graph.facebook.com/v21.0/me/adaccounts", "facebook-ads/accounts", {"access_token": "expired"}),
        ("/business-api.tiktok.com/", "tiktok-ads/advertisers", {"access_token": "revoked"}),
    ],
)
async def test_invalid_credentials_are_an_authorization_failure(viewer, path: str, route: str, body: dict) -> None:
    """OAuth `invalid_grant` (400), Graph error 190 (400) and TikTok code 40105 (200) mean the
    connection must be signed in again: 401, not the generic 500."""
    r = await viewer.post(f"/api/external/{route}", json=body)
    assert (r.status_code, r.json()) == (401, {"detail": f"Authorization failed while {ROUTES[route][2]}."})


@pytest.mark.parametrize(
    ("route", "second_call"),
    [
        ("amazon-ads/profiles", "/advertising-api.amazon.com/v2/profiles"),
        ("google-ads/customers", "/googleads.googleapis.com/v20/customers:listAccessibleCustomers"),
        ("pinterest-ads/accounts", "/api.pinterest.com/v5/ad_accounts"),
        ("snapchat-ads/ad-accounts", "/adsapi.snapchat.com/v1/organizations/org-2/adaccounts"),
        ("linkedin-organic/organizations", "/api.linkedin.com/rest/organizationAcls"),
    ],
)
async def test_a_failure_after_the_token_is_mapped_too(
    viewer, fake: FakeProviders, route: str, second_call: str
) -> None:
    fake.script(second_call, status=403, json={"message": "forbidden"})
    body, _, context = ROUTES[route]
    r = await viewer.post(f"/api/external/{route}", json=body)
    assert (r.status_code, r.json()) == (403, {"detail": f"Authorization failed while {context}."})


@pytest.mark.parametrize("route", ROUTES)
async def test_timeout_is_a_502(viewer, fake: FakeProviders, route: str) -> None:
    body, first_call, context = ROUTES[route]
    fake.script(first_call, json={}, delay=TIMEOUT * 4)
    r = await viewer.post(f"/api/external/{route}", json=body)
    assert (r.status_code, r.json()) == (502, {"detail": f"Provider timed out while {context}."})


async def test_a_slow_customer_name_times_the_whole_lookup_out(viewer, fake: FakeProviders) -> None:
    fake.script("/googleads.googleapis.com/v20/customers/2222222222/googleAds:searchStream", json=[], delay=TIMEOUT * 4)
    r = await viewer.post("/api/external/google-ads/customers", json=ROUTES["google-ads/customers"][0])
    assert (r.status_code, r.json()) == (502, {"detail": "Provider timed out while fetching Google Ads customers."})


@pytest.mark.parametrize(
    ("script", "route"),
    [
        ({"text": "<html>oops</html>"}, "pinterest-ads/accounts"),
        ({"json": {"unexpected": True}}, "amazon-ads/profiles"),
    ],
)
async def test_an_unexpected_answer_is_a_500(viewer, fake: FakeProviders, script: dict, route: str) -> None:
    path = (
        "/api.pinterest.com/v5/ad_accounts"
        if route.startswith("pinterest")
        else "/advertising-api.amazon.com/v2/profiles"
    )
    fake.script(path, **script)
    r = await viewer.post(f"/api/external/{route}", json=ROUTES[route][0])
    assert (r.status_code, r.json()) == (500, {"detail": f"Failed {ROUTES[route][2]}."})


async def test_items_without_an_id_are_left_out(viewer, fake: FakeProviders) -> None:
    profile = {"profileId": 7, "countryCode": "FR", "accountInfo": {"id": "A7", "name": "Seven"}}
    fake.script("/advertising-api.amazon.com/v2/profiles", json=[{"profileId": None}, {"countryCode": "US"}, profile])
    r = await viewer.post("/api/external/amazon-ads/profiles", json=APP)
    assert r.json() == [{"profile_id": "7", "name": "Seven (FR)", "account_id": "A7", "country_code": "FR"}]


@pytest.mark.parametrize("route", ROUTES)
async def test_missing_fields_are_422_without_any_provider_call(viewer, fake: FakeProviders, route: str) -> None:
    r = await viewer.post(f"/api/external/{route}", json={"unrelated": "x"})
    assert r.status_code == 422
    assert {e["type"] for e in r.json()["detail"]} == {"missing"}
    assert fake.requests == []


# ------------------------------------------------------------------------------------ RBAC


@pytest.mark.parametrize("route", ROUTES)
async def test_rbac(provider_app, world: World, fake: FakeProviders, route: str) -> None:
    body = ROUTES[route][0]
    callers = {
        "anonymous": None,
        "invalid": Identity(state="invalid"),
        "no_org": world.no_org,
        "org_gone": world.org_gone,
        "removed": world.removed,
    }
    expected = {
        "anonymous": (401, "Not authenticated"),
        "invalid": (401, "Invalid or expired session"),
        "no_org": (400, "No organisation selected"),
        "org_gone": (404, "Organisation not found"),
        "removed": (403, "Not a member of this organisation"),
    }
    for name, identity in callers.items():
        async with client(provider_app, identity) as caller:
            r = await caller.post(f"/api/external/{route}", json=body)
            assert (r.status_code, r.json()) == (expected[name][0], {"detail": expected[name][1]}), name
            r = await caller.post(f"/api/external/{route}", json={})  # auth before body validation
            assert r.status_code == expected[name][0], name
    assert fake.requests == []
    for identity in (world.viewer, world.editor, world.admin):
        async with client(provider_app, identity) as caller:
            assert (await caller.post(f"/api/external/{route}", json=body)).status_code == 200


# --------------------------------------------- the platform's secret by reference (issue 15)

# route -> the provider whose platform app the route's refresh-token call uses
APP_ROUTES = {
    "amazon-ads/profiles": "amazon",
    "google-ads/customers": "google",
    "pinterest-ads/accounts": "pinterest",
    "snapchat-ads/ad-accounts": "snapchat",
    "linkedin-ads/accounts": "linkedin",
    "linkedin-organic/organizations": "linkedin",
}


@pytest.mark.parametrize("route", APP_ROUTES)
async def test_the_secret_reference_is_resolved_for_the_provider_only(viewer, fake: FakeProviders, route: str) -> None:
    """A connection made by the code exchange holds `platform:oauth/<p>/client_secret`: the look-up
    sends the platform's secret to the provider and nowhere else."""
    provider = APP_ROUTES[route]
    body, path, _ = ROUTES[route]
    app = {"client_id": f"{provider}-client-id", "client_secret": secret_ref(provider)}
    r = await viewer.post(f"/api/external/{route}", json={**body, **app})
    assert r.status_code == 200, r.text
    assert f"{provider}-client-secret" not in r.text
    [token] = fake.to(path)
    if provider == "pinterest":
        assert token.basic_auth == (f"{provider}-client-id", f"{provider}-client-secret")
    else:
        assert token.form["client_secret"] == f"{provider}-client-secret"
    upstream = [r for r in fake.requests if r is not token]
    assert all(b"client-secret" not in r.body and "client-secret" not in r.query_string for r in upstream)


@pytest.mark.parametrize("route", APP_ROUTES)
async def test_another_providers_secret_reference_is_refused(viewer, fake: FakeProviders, route: str) -> None:
    """The reference cannot carry one provider's secret to another provider's API."""
    other = "criteo"
    r = await viewer.post(f"/api/external/{route}", json={**ROUTES[route][0], "client_secret": secret_ref(other)})
    detail = f"client_secret refers to a platform OAuth app that cannot be used for {APP_ROUTES[route]}"
    assert (r.status_code, r.json()) == (400, {"detail": detail})
    assert fake.requests == []
