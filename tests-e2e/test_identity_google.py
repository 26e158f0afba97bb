"""Google sign-in end to end: browser -> Traefik -> gateway -> identity -> a fake Google server
(its URLs configured through INTERLOPER_AUTH_GOOGLE_*), on a small stack of its own."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from icp_stack.ports import free_port
from icp_stack.pytest_plugin import STACK_ARGS_ENV, StackHandle, start_stack, stop_stack_process
from icp_testing.fake_google import FakeGoogle, serve_in_thread, userinfo

ONLY_WHAT_SIGN_IN_NEEDS = "pipelines,pipelines-scheduler,pipelines-worker,notifications,agent"
SESSION_COOKIE = re.compile(r"session_token=[A-Za-z0-9_-]{64}; HttpOnly; Max-Age=\d+; Path=/; SameSite=lax")


@pytest.fixture(scope="module")
def fake_google() -> Iterator[FakeGoogle]:
    with serve_in_thread(FakeGoogle()) as fake:
        yield fake


@pytest.fixture(scope="module")
def google_stack(fake_google: FakeGoogle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    base = tmp_path_factory.mktemp("google-stack")
    env = {
        **os.environ,
        "INTERLOPER_AUTH_GOOGLE_CLIENT_ID": fake_google.client_id,
        "INTERLOPER_AUTH_GOOGLE_CLIENT_SECRET": fake_google.client_secret,
        "INTERLOPER_AUTH_GOOGLE_AUTH_URL": f"{fake_google.url}/auth",
        "INTERLOPER_AUTH_GOOGLE_TOKEN_URL": f"{fake_google.url}/token",
        "INTERLOPER_AUTH_GOOGLE_USERINFO_URL": f"{fake_google.url}/userinfo",
    }
    env.pop("INTERLOPER_AUTH_GOOGLE_REDIRECT_URI", None)  # derived from the public URL
    extra = shlex.split(os.environ.get(STACK_ARGS_ENV, ""))
    handle = start_stack(
        base / "data", free_port(), base / "stack.log", ["--without", ONLY_WHAT_SIGN_IN_NEEDS, *extra], env=env
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)


@pytest.fixture
def browser(google_stack: StackHandle, fake_google: FakeGoogle) -> Iterator[httpx.Client]:
    fake_google.reset()
    with httpx.Client(base_url=google_stack.base_url, timeout=30.0, follow_redirects=False) as client:
        yield client


def authorize(browser: httpx.Client, fake_google: FakeGoogle, code: str, redirect: str) -> httpx.URL:
    """Start sign-in and consent at the fake Google; returns the callback URL it sends back."""
    r = browser.get("/api/auth/google", params={"redirect": redirect})
    assert r.status_code == 307, r.text
    assert r.headers["location"].startswith(f"{fake_google.url}/auth?")
    r = httpx.get(httpx.URL(r.headers["location"]).copy_merge_params({"login_hint": code}))
    assert r.status_code == 302
    return httpx.URL(r.headers["location"])


def test_google_sign_in_through_the_edge(browser: httpx.Client, fake_google: FakeGoogle, google_stack) -> None:
    fake_google.add_code("c-grace", userinfo("g-grace", "grace@example.com", "Grace", "https://img.example/g.png"))
    callback = authorize(browser, fake_google, "c-grace", "/invite/xyz")
    assert str(callback).startswith(f"{google_stack.base_url}/api/auth/google/callback?")
    r = browser.get(callback)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "/invite/xyz"
    assert any(SESSION_COOKIE.fullmatch(c) for c in r.headers.get_list("set-cookie"))
    assert fake_google.token_requests[0]["redirect_uri"] == f"{google_stack.base_url}/api/auth/google/callback"
    me = browser.get("/api/auth/me").json()
    assert (me["email"], me["name"], me["avatar_url"], me["organisation"]) == (
        "grace@example.com",
        "Grace",
        "https://img.example/g.png",
        None,
    )


def test_google_sign_in_refuses_a_foreign_state_and_off_site_redirects(
    browser: httpx.Client, fake_google: FakeGoogle, google_stack
) -> None:
    fake_google.add_code("c", userinfo("g-1", "one@example.com"))
    callback = authorize(browser, fake_google, "c", "//evil.example")
    state = parse_qs(urlsplit(str(callback)).query)["state"][0]
    assert state.endswith("./")
    # Another browser (no nonce cookie) cannot complete this sign-in: login CSRF is refused.
    with httpx.Client(base_url=google_stack.base_url) as attacker_victim:
        r = attacker_victim.get(callback)
    assert r.status_code == 400, (r.status_code, r.headers, r.text)
    assert r.json() == {"detail": "Invalid OAuth state"}
    r = browser.get(callback)
    assert (r.status_code, r.headers["location"]) == (302, "/")


def test_google_provider_failure_through_the_edge(browser: httpx.Client, fake_google: FakeGoogle) -> None:
    fake_google.add_code("c", userinfo("g-2", "two@example.com"))
    callback = authorize(browser, fake_google, "c", "/")
    fake_google.mode = "token_error"
    r = browser.get(callback)
    assert (r.status_code, r.json()) == (401, {"detail": "Failed to exchange authorization code"})
    assert browser.get("/api/auth/me").status_code == 401
