"""OpenID Connect sign-in end to end: browser -> Traefik -> gateway -> identity -> a real OpenID
provider (oidc-provider-mock, two instances), configured through INTERLOPER_AUTH_OIDC_PROVIDERS
on a small stack of its own without Google."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from icp_stack.ports import free_port
from icp_stack.pytest_plugin import STACK_ARGS_ENV, StackHandle, start_stack, stop_stack_process
from icp_testing.oidc import OidcProviderServer, serve_oidc_provider

ONLY_WHAT_SIGN_IN_NEEDS = "pipelines,pipelines-scheduler,pipelines-worker,notifications,agent"
SESSION_COOKIE = re.compile(r"session_token=[A-Za-z0-9_-]{64}; HttpOnly; Max-Age=\d+; Path=/; SameSite=lax")


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProviderServer]:
    with serve_oidc_provider() as server:
        yield server


@pytest.fixture(scope="module")
def other_provider() -> Iterator[OidcProviderServer]:
    with serve_oidc_provider() as server:
        yield server


@pytest.fixture(scope="module")
def oidc_stack(
    provider: OidcProviderServer, other_provider: OidcProviderServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackHandle]:
    base = tmp_path_factory.mktemp("oidc-stack")
    providers = [
        {"name": "acme", "issuer": provider.url, "client_id": "acme", "client_secret": "s1", "display_name": "Acme"},
        {"name": "other", "issuer": other_provider.url, "client_id": "other", "client_secret": "s2"},
        {"name": "down", "issuer": "http://127.0.0.1:9", "client_id": "down"},
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_AUTH_GOOGLE_")}
    env["INTERLOPER_AUTH_OIDC_PROVIDERS"] = json.dumps(providers)
    extra = shlex.split(os.environ.get(STACK_ARGS_ENV, ""))
    handle = start_stack(
        base / "data", free_port(), base / "stack.log", ["--without", ONLY_WHAT_SIGN_IN_NEEDS, *extra], env=env
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)


@pytest.fixture
def browser(oidc_stack: StackHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=oidc_stack.base_url, timeout=30.0, follow_redirects=False) as client:
        yield client


def authorize(browser: httpx.Client, provider: OidcProviderServer, name: str, sub: str, redirect: str = "/") -> str:
    """Start sign-in through the edge and consent at the provider; the callback URL it sends back."""
    r = browser.get(f"/api/auth/oidc/{name}/login", params={"redirect": redirect})
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith(f"{provider.url}/oauth2/authorize?")
    with httpx.Client(timeout=10) as at_provider:
        return provider.authorize(at_provider, r.headers["location"], sub)


def test_the_google_button_lists_the_providers(browser: httpx.Client) -> None:
    r = browser.get("/api/auth/google", params={"redirect": "/jobs"})
    assert (r.status_code, r.headers["location"]) == (307, "/api/auth/oidc?redirect=%2Fjobs")
    page = browser.get(r.headers["location"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert ">Sign in with Acme</a>" in page.text
    assert 'href="/api/auth/oidc/other/login?redirect=%2Fjobs"' in page.text


def test_oidc_sign_in_through_the_edge(browser: httpx.Client, provider: OidcProviderServer, oidc_stack) -> None:
    provider.set_user("grace", email="grace@example.com", email_verified=True, name="Grace")
    callback = authorize(browser, provider, "acme", "grace", "/invite/xyz")
    assert callback.startswith(f"{oidc_stack.base_url}/api/auth/oidc/acme/callback?")
    r = browser.get(callback)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/invite/xyz"
    assert any(SESSION_COOKIE.fullmatch(c) for c in r.headers.get_list("set-cookie"))
    me = browser.get("/api/auth/me").json()
    assert (me["email"], me["name"], me["organisation"]) == ("grace@example.com", "Grace", None)


def test_oidc_refusals_through_the_edge(
    browser: httpx.Client, provider: OidcProviderServer, other_provider: OidcProviderServer, oidc_stack
) -> None:
    # Login CSRF: the callback opened in another browser (no state cookie) is refused.
    provider.set_user("heidi", email="heidi@example.com", email_verified=True)
    callback = authorize(browser, provider, "acme", "heidi")
    with httpx.Client(base_url=oidc_stack.base_url) as victim:
        r = victim.get(callback)
    assert r.status_code == 400 and "Sign-in state is missing" in r.text
    assert "session_token" not in r.headers.get("set-cookie", "")
    # An e-mail the provider did not verify.
    provider.set_user("ivan", email="ivan@example.com", email_verified=False)
    r = browser.get(authorize(browser, provider, "acme", "ivan"))
    assert r.status_code == 403 and "not verified" in r.text
    # A second provider asserting the e-mail of an existing account does not get into it.
    assert browser.get(authorize(browser, provider, "acme", "heidi")).status_code == 302
    other_provider.set_user("mallory", email="heidi@example.com", email_verified=True)
    with httpx.Client(base_url=oidc_stack.base_url, follow_redirects=False) as attacker:
        r = attacker.get(authorize(attacker, other_provider, "other", "mallory"))
        assert r.status_code == 409 and "already exists and is not linked" in r.text
        assert attacker.get("/api/auth/me").status_code == 401
    # A wrong nonce (an ID token minted for another sign-in).
    r = browser.get("/api/auth/oidc/acme/login")
    nonce = parse_qs(urlsplit(r.headers["location"]).query)["nonce"][0]
    with httpx.Client(timeout=10) as at_provider:
        callback = provider.authorize(at_provider, r.headers["location"].replace(nonce, "another-nonce"), "heidi")
    assert browser.get(callback).status_code == 401


def test_unknown_and_unavailable_providers_through_the_edge(browser: httpx.Client) -> None:
    r = browser.get("/api/auth/oidc/nope/login")
    assert (r.status_code, r.json()) == (404, {"detail": "Unknown sign-in provider"})
    r = browser.get("/api/auth/oidc/down/login")
    assert r.status_code == 502
    assert "sign-in provider is unavailable" in r.text and "Traceback" not in r.text
