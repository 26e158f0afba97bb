"""`/api/oauth` against the fake provider server: what each provider receives (method, URL, content
type, authentication, fields of spec 2.14), what the caller gets back, and every failure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from icp_common.identity import Identity
from icp_pipelines.oauth.secret_ref import secret_ref
from icp_pipelines.oauth.settings import PROVIDERS
from icp_testing.fake_providers import GOOD_CODE, TIKTOK_TOKEN, FakeProviders

from ..conftest import World
from .conftest import TIMEOUT, client, running_app

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
GOOGLE_META = {"auth_url": "https://accounts.google.com/o/oauth2/v2/auth", "label": "Google", "icon": "devicon:google"}

# provider -> (method, upstream URL, content type of the body; None = query parameters)
EXCHANGES: dict[str, tuple[str, str, str | None]] = {
    "amazon": ("POST", "https://api.amazon.com/auth/o2/token", JSON),
    "criteo": ("POST", "https://api.criteo.com/oauth2/token", JSON),
    "facebook": ("GET", "https://graph.facebook.com/v19.0/oauth/access_token", None),
    "google": ("POST", "https://oauth2.googleapis.com/token", JSON),
    "linkedin": ("POST", "https://www.linkedin.com/oauth/v2/accessToken", FORM),
    "microsoft": ("POST", "https://login.microsoftonline.com/common/oauth2/v2.0/token", FORM),
    "pinterest": ("POST", "https://api.pinterest.com/v5/oauth/token", FORM),
    "snapchat": ("POST", "https://accounts.snapchat.com/login/oauth2/access_token", FORM),
    "tiktok": ("POST", "https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token", JSON),
}


def app_fields(provider: str) -> dict[str, str]:
    """What the answer carries of the platform's app: its id and a reference to its secret."""
    return {"client_id": f"{provider}-client-id", "client_secret": f"platform:oauth/{provider}/client_secret"}


def sent_fields(provider: str, code: str = GOOD_CODE) -> dict[str, str]:
    if provider == "tiktok":
        return {"auth_code": code, "app_id": "tiktok-client-id", "secret": "tiktok-client-secret"}
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": f"http://ui.example/auth/{provider}",
        "client_id": f"{provider}-client-id",
        "client_secret": f"{provider}-client-secret",  # the real secret goes to the provider only
    }


# ------------------------------------------------------------------------------- providers


async def test_providers_lists_every_configured_provider_in_order_with_catalog_metadata(anonymous) -> None:
    r = await anonymous.get("/api/oauth/providers")
    assert r.status_code == 200
    expected = []
    for key in PROVIDERS:
        meta = GOOGLE_META if key == "google" else {"auth_url": "", "label": "", "icon": ""}
        expected.append(
            {"key": key, "client_id": f"{key}-client-id", "redirect_uri": f"http://ui.example/auth/{key}", **meta}
        )
    assert r.json() == expected


async def test_providers_without_configuration_is_an_empty_list(bare_app: FastAPI) -> None:
    async with client(bare_app) as anonymous:
        r = await anonymous.get("/api/oauth/providers")
    assert (r.status_code, r.json()) == (200, [])


async def test_providers_skips_a_partly_configured_provider(settings, resources, fake: FakeProviders) -> None:
    only = {
        "google_client_id": "g",
        "google_client_secret": "s",
        "google_redirect_uri": "http://ui.example/auth/google",
        "amazon_client_id": "a",
        "amazon_client_secret": "s",  # no redirect URI
    }
    oauth = fake.settings(**{**dict.fromkeys(FakeProviders.credentials(), ""), **only})
    async with running_app(settings, resources, oauth) as app, client(app) as anonymous:
        r = await anonymous.get("/api/oauth/providers")
    assert r.json() == [
        {"key": "google", "client_id": "g", "redirect_uri": "http://ui.example/auth/google", **GOOGLE_META}
    ]


# -------------------------------------------------------------------------------- exchange


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_exchange_sends_what_the_provider_expects(editor, fake: FakeProviders, provider: str) -> None:
    r = await editor.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})
    assert r.status_code == 200, r.text

    [sent] = fake.requests
    method, url, content_type = EXCHANGES[provider]
    assert (sent.method, sent.upstream) == (method, url)
    if content_type is None:
        assert (sent.query, sent.body, sent.content_type) == (sent_fields(provider), b"", "")
    else:
        assert (sent.query_string, sent.content_type) == ("", content_type)
        assert (sent.json if content_type == JSON else sent.form) == sent_fields(provider)
    if provider == "pinterest":
        assert sent.basic_auth == ("pinterest-client-id", "pinterest-client-secret")
    else:
        assert "authorization" not in sent.headers
    assert "cookie" not in sent.headers


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "tiktok"])
async def test_exchange_returns_the_provider_json_plus_the_app_credentials(editor, provider: str) -> None:
    r = await editor.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})
    host = EXCHANGES[provider][1].split("/")[2]
    assert r.json() == {
        "access_token": f"access-from-{host}",
        "refresh_token": f"refresh-from-{host}",
        "token_type": "bearer",
        "expires_in": 3600,
        **app_fields(provider),
    }


async def test_tiktok_answer_keeps_its_envelope_and_exposes_the_token_at_the_top(editor) -> None:
    r = await editor.post("/api/oauth/tiktok", json={"code": GOOD_CODE})
    data = {"access_token": TIKTOK_TOKEN, "advertiser_ids": ["7001", "7002"], "scope": [4, 5]}
    assert r.json() == {
        **data,
        "code": 0,
        "message": "OK",
        "data": data,
        "request_id": "r-2",
        **app_fields("tiktok"),
    }


async def test_unknown_provider(editor, fake: FakeProviders) -> None:
    r = await editor.post("/api/oauth/foo", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (400, {"detail": "Unknown OAuth provider: foo"})
    assert fake.requests == []


@pytest.mark.parametrize("provider", ["amazon", "tiktok"])
async def test_unconfigured_provider(bare_app: FastAPI, fake: FakeProviders, world: World, provider: str) -> None:
    async with client(bare_app, world.editor) as editor:
        r = await editor.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (400, {"detail": f"OAuth provider {provider} is not configured"})
    assert fake.requests == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"json": {}}, {"type": "missing", "loc": ["body", "code"]}),
        ({"json": {"code": 12}}, {"type": "string_type", "loc": ["body", "code"]}),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, {"type": "json_invalid"}),
        ({"content": b"code=x", "headers": {"content-type": FORM}}, {"type": "model_attributes_type"}),
    ],
)
async def test_invalid_body(editor, fake: FakeProviders, kwargs: dict[str, Any], error: dict[str, Any]) -> None:
    r = await editor.post("/api/oauth/google", **kwargs)
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert error.items() <= detail.items()
    assert fake.requests == []


async def test_refused_code_is_a_500_with_the_provider_answer(editor) -> None:
    r = await editor.post("/api/oauth/google", json={"code": "stolen"})
    assert r.status_code == 500
    assert r.json() == {
        "detail": 'Failed to exchange auth code: {"error":"invalid_grant","error_description":"authorization code is invalid"}'
    }


@pytest.mark.parametrize("status", [401, 403, 404, 500, 503])
async def test_provider_error_status_is_a_500_with_its_body(editor, fake: FakeProviders, status: int) -> None:
    fake.script("/www.linkedin.com/oauth/v2/accessToken", status=status, text=f"upstream says {status}")
    r = await editor.post("/api/oauth/linkedin", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (500, {"detail": f"Failed to exchange auth code: upstream says {status}"})


async def test_tiktok_error_code_is_a_provider_error(editor) -> None:
    r = await editor.post("/api/oauth/tiktok", json={"code": "expired"})
    assert r.status_code == 500
    assert r.json()["detail"].startswith('Failed to exchange auth code: {"code":40007,"message":"auth_code is invalid"')


async def test_answer_that_is_not_json_is_a_500(editor, fake: FakeProviders) -> None:
    fake.script("/api.criteo.com/oauth2/token", text="<html>maintenance</html>")
    r = await editor.post("/api/oauth/criteo", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (
        500,
        {"detail": "Failed to exchange auth code: Expecting value: line 1 column 1 (char 0)"},
    )


async def test_answer_that_is_not_an_object_is_a_500(editor, fake: FakeProviders) -> None:
    fake.script("/api.criteo.com/oauth2/token", json=["token"])
    r = await editor.post("/api/oauth/criteo", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (500, {"detail": 'Failed to exchange auth code: ["token"]'})


async def test_provider_timeout_is_a_502(editor, fake: FakeProviders) -> None:
    fake.script("/oauth2.googleapis.com/token", json={"access_token": "late"}, delay=TIMEOUT * 4)
    started = asyncio.get_running_loop().time()
    r = await editor.post("/api/oauth/google", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (
        502,
        {"detail": f"Failed to exchange auth code: google did not answer within {TIMEOUT:g} s"},
    )
    assert asyncio.get_running_loop().time() - started < TIMEOUT * 3


async def test_unreachable_provider_is_a_502(settings, resources, fake: FakeProviders, world: World) -> None:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    oauth = fake.settings(google_oauth_url=closed, timeout_seconds=TIMEOUT)
    async with running_app(settings, resources, oauth) as app, client(app, world.editor) as editor:
        r = await editor.post("/api/oauth/google", json={"code": GOOD_CODE})
    assert (r.status_code, r.json()) == (
        502,
        {"detail": "Failed to exchange auth code: cannot reach google (ConnectError)"},
    )


async def test_no_cookie_travels_between_provider_calls(editor, fake: FakeProviders) -> None:
    for provider in ("google", "google", "pinterest"):
        assert (await editor.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})).status_code == 200
    assert len(fake.requests) == 3
    assert all("cookie" not in r.headers for r in fake.requests)


async def test_exchange_needs_an_editor_session(provider_app: FastAPI, fake: FakeProviders, world: World) -> None:
    """Issue 15: anyone could exchange a code (and read the platform's client secret)."""
    refused = [
        (None, 401, "Not authenticated"),
        (Identity(state="invalid"), 401, "Invalid or expired session"),
        (world.no_org, 400, "No organisation selected"),
        (world.org_gone, 404, "Organisation not found"),
        (world.removed, 403, "Not a member of this organisation"),
        (world.viewer, 403, "Requires editor role or higher"),
    ]
    for identity, status, detail in refused:
        async with client(provider_app, identity) as caller:
            r = await caller.post("/api/oauth/google", json={"code": GOOD_CODE})
            assert (r.status_code, r.json()) == (status, {"detail": detail}), identity
            assert (await caller.get("/api/oauth/providers")).status_code == 200  # the list stays public
    assert fake.requests == []  # refused before any provider call
    for identity in (world.editor, world.admin):
        async with client(provider_app, identity) as caller:
            assert (await caller.post("/api/oauth/google", json={"code": GOOD_CODE})).status_code == 200


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_exchange_never_answers_the_platform_secret(editor, provider: str) -> None:
    r = await editor.post(f"/api/oauth/{provider}", json={"code": GOOD_CODE})
    assert r.status_code == 200, r.text
    assert f"{provider}-client-secret" not in r.text
    assert r.json()["client_secret"] == secret_ref(provider) == f"platform:oauth/{provider}/client_secret"


async def test_lifespan_opens_one_bounded_pool_and_closes_it(settings, resources, fake: FakeProviders) -> None:
    oauth = fake.settings(max_connections=7, max_keepalive_connections=2, timeout_seconds=12.5)
    async with running_app(settings, resources, oauth) as app:
        pool: httpx.AsyncClient = app.state.provider_http
        assert pool.timeout == httpx.Timeout(12.5)
        transport = pool._transport._pool  # type: ignore[attr-defined]
        assert (transport._max_connections, transport._max_keepalive_connections) == (7, 2)
        assert not pool.is_closed
    assert pool.is_closed
    assert not hasattr(app.state, "provider_http")
