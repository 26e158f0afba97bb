"""GET /api/auth/dev-login: only with INTERLOPER_AUTH_DEV_LOGIN=true; sets the cookie as Google
sign-in does and redirects to a same-site path."""

from __future__ import annotations

import re

import pytest

COOKIE = re.compile(r"session_token=([A-Za-z0-9_-]{64}); HttpOnly; Max-Age=2592000; Path=/; SameSite=lax")


async def test_dev_login_creates_the_profile_and_signs_in(client_for, db):
    client = client_for()
    r = await client.get("/api/auth/dev-login", params={"email": "dev@example.com", "name": "Dev", "redirect": "/jobs"})
    assert r.status_code == 302
    assert r.headers["location"] == "/jobs"
    match = COOKIE.fullmatch(r.headers["set-cookie"])
    assert match, r.headers["set-cookie"]
    me = (await client.get("/api/auth/me")).json()  # the jar now holds the cookie
    assert (me["email"], me["name"], me["organisation"]) == ("dev@example.com", "Dev", None)
    # The same e-mail again: same profile, a new session.
    r = await client_for().get("/api/auth/dev-login", params={"email": "dev@example.com"})
    assert r.headers["location"] == "/"
    token2 = COOKIE.fullmatch(r.headers["set-cookie"]).group(1)
    assert token2 != match.group(1)
    me2 = (await client_for(token2).get("/api/auth/me")).json()
    assert me2["id"] == me["id"]
    assert me2["name"] == "Dev"


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https://evil.example/x", "x"])
async def test_dev_login_redirects_only_to_same_site_paths(client_for, target):
    r = await client_for().get("/api/auth/dev-login", params={"email": "dev@example.com", "redirect": target})
    assert (r.status_code, r.headers["location"]) == (302, "/")


async def test_dev_login_without_email_shows_a_form(client_for):
    r = await client_for().get("/api/auth/dev-login", params={"redirect": '/jobs"><script>'})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<form method="get" action="/api/auth/dev-login">' in r.text
    assert 'value="/jobs&quot;&gt;&lt;script&gt;"' in r.text  # the redirect is kept, escaped
    # styled like the web UI's login card and in its words (its button says "Login with Google")
    assert "<style>" in r.text and "Sign in to your account to continue" in r.text
    assert '<button type="submit">Login</button>' in r.text and "Google login is not configured" in r.text


async def test_google_button_leads_to_the_dev_form_when_google_is_not_configured(make_app, client_for):
    client = client_for(app_=make_app(google_client_id=""))
    r = await client.get("/api/auth/google", params={"redirect": "/sources"})
    assert (r.status_code, r.headers["location"]) == (307, "/api/auth/dev-login?redirect=%2Fsources")


async def test_dev_login_needs_an_email(client_for):
    r = await client_for().get("/api/auth/dev-login", params={"email": ""})
    assert r.status_code == 422
    r = await client_for().get("/api/auth/dev-login", params={"email": "   "})
    assert (r.status_code, r.json()) == (400, {"detail": "email is required"})


async def test_dev_login_is_404_unless_enabled(make_app, client_for, db):
    client = client_for(app_=make_app(dev_login=False))
    r = await client.get("/api/auth/dev-login", params={"email": "dev@example.com"})
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    assert "set-cookie" not in r.headers
    assert "/api/auth/dev-login" not in make_app(dev_login=False).openapi()["paths"]
