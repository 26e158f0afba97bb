"""Google sign-in against a local fake Google server: redirect, state nonce bound to a cookie,
same-site post-login redirects, the session cookie, and every provider failure."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text

from icp_identity.auth.cookies import OAUTH_STATE_COOKIE
from icp_identity.security import hash_token
from icp_testing.fake_google import userinfo

SESSION_COOKIE_RE = re.compile(r"session_token=([A-Za-z0-9_-]{64}); HttpOnly; Max-Age=2592000; Path=/; SameSite=lax")


async def start(client: httpx.AsyncClient, redirect: str | None = None) -> tuple[str, dict[str, list[str]]]:
    """GET /api/auth/google; returns the state nonce cookie and the authorization URL's query."""
    params = {"redirect": redirect} if redirect is not None else {}
    r = await client.get("/api/auth/google", params=params)
    assert r.status_code == 307
    return client.cookies[OAUTH_STATE_COOKIE], parse_qs(urlsplit(r.headers["location"]).query)


async def consent(fake_google, authorize_query: dict[str, list[str]], code: str) -> dict[str, str]:
    """What the browser does at Google: the fake auto-consents and redirects back with code+state."""
    params = {k: v[0] for k, v in authorize_query.items()} | {"login_hint": code}
    async with httpx.AsyncClient() as browser:
        r = await browser.get(f"{fake_google.url}/auth", params=params)
    assert r.status_code == 302
    callback = urlsplit(r.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == "http://testserver/api/auth/google/callback"
    return {k: v[0] for k, v in parse_qs(callback.query).items()}


async def sign_in(client, fake_google, code: str, redirect: str | None = None) -> httpx.Response:
    _, query = await start(client, redirect)
    return await client.get("/api/auth/google/callback", params=await consent(fake_google, query, code))


async def count(db, table: str) -> int:
    async with db() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_google_redirect(client_for, fake_google, settings):
    client = client_for()
    r = await client.get("/api/auth/google", params={"redirect": "/invite/abc"})
    assert r.status_code == 307
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.auth.google_auth_url
    assert "scope=openid+email+profile" in location.query
    query = parse_qs(location.query)
    nonce = client.cookies[OAUTH_STATE_COOKIE]
    assert {k: v[0] for k, v in query.items()} == {
        "client_id": fake_google.client_id,
        "redirect_uri": "http://testserver/api/auth/google/callback",
        "response_type": "code",
        "scope": "openid email profile",
        "access_type": "offline",
        "prompt": "consent",
        "state": f"{nonce}./invite/abc",
    }
    assert len(nonce) >= 32
    assert r.headers["set-cookie"] == (
        f"{OAUTH_STATE_COOKIE}={nonce}; HttpOnly; Max-Age=600; Path=/api/auth/google; SameSite=lax"
    )
    # A new nonce every time.
    r2 = await client_for().get("/api/auth/google")
    assert nonce not in r2.headers["set-cookie"]
    assert parse_qs(urlsplit(r2.headers["location"]).query)["state"][0].endswith("./")


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "https://evil.example/",
        "evil",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=1\r\n",
    ],
)
async def test_google_redirect_keeps_only_same_site_paths(client_for, target):
    _, query = await start(client_for(), target)
    assert query["state"][0].split(".", 1)[1] == "/"


async def test_google_not_configured(make_app, client_for):
    client = client_for(app_=make_app(google_client_id="", dev_login=False))
    r = await client.get("/api/auth/google")
    assert (r.status_code, r.json()) == (500, {"detail": "Google OAuth not configured"})
    r = await client.get("/api/auth/google/callback", params={"code": "x", "state": "a./"})
    assert (r.status_code, r.json()) == (500, {"detail": "Google OAuth not configured"})
    client = client_for(app_=make_app(google_client_secret=""))
    r = await client.get("/api/auth/google/callback", params={"code": "x", "state": "a./"})
    assert (r.status_code, r.json()) == (500, {"detail": "Google OAuth not configured"})


async def test_full_google_sign_in(client_for, fake_google, db):
    fake_google.add_code("code-ada", userinfo("g-ada", "ada@example.com", "Ada", "https://img.example/ada.png"))
    client = client_for()
    r = await sign_in(client, fake_google, "code-ada", "/invite/tok?x=1")
    assert r.status_code == 302
    assert r.headers["location"] == "/invite/tok?x=1"
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("session_token="))
    match = SESSION_COOKIE_RE.fullmatch(session_cookie)
    assert match, session_cookie
    token = match.group(1)
    assert any(c.startswith(f'{OAUTH_STATE_COOKIE}=""') and "Max-Age=0" in c for c in cookies)
    assert fake_google.token_requests == [
        {
            "code": "code-ada",
            "client_id": fake_google.client_id,
            "client_secret": fake_google.client_secret,
            "redirect_uri": "http://testserver/api/auth/google/callback",
            "grant_type": "authorization_code",
        }
    ]
    assert fake_google.userinfo_requests == ["Bearer at-code-ada"]
    me = (await client_for(token).get("/api/auth/me")).json()
    assert me["email"] == "ada@example.com"
    assert me["name"] == "Ada"
    assert me["avatar_url"] == "https://img.example/ada.png"
    assert me["organisation"] is None
    async with db() as s:
        stored = (await s.execute(text("SELECT token_hash, organisation_id FROM sessions"))).one()
        google_id = (await s.execute(text("SELECT google_id FROM profiles"))).scalar_one()
    assert stored.token_hash == hash_token(token)
    assert stored.organisation_id is None
    assert google_id == "g-ada"


async def test_google_sign_in_updates_the_profile_and_links_an_email_profile(
    client_for, fake_google, make_user, db, make_app
):
    """Where the deployment allows linking verified e-mails."""
    linking = make_app(link_verified_emails=True)
    existing = await make_user("ada@example.com", "Dev Ada")
    fake_google.add_code("c1", userinfo("g-ada", "ada@example.com", "Ada"))
    r = await sign_in(client_for(app_=linking), fake_google, "c1")
    assert r.status_code == 302
    assert r.headers["location"] == "/"
    fake_google.add_code("c2", userinfo("g-ada", "ada@new.example", "Ada L.", "https://img.example/2.png"))
    r = await sign_in(client_for(app_=linking), fake_google, "c2")
    token = SESSION_COOKIE_RE.search(r.headers["set-cookie"]).group(1)
    me = (await client_for(token).get("/api/auth/me")).json()
    assert me["id"] == str(existing.user_id)
    assert (me["email"], me["name"], me["avatar_url"]) == ("ada@new.example", "Ada L.", "https://img.example/2.png")
    assert await count(db, "profiles") == 1


async def test_google_sign_in_does_not_take_over_an_unlinked_profile_by_default(client_for, fake_google, make_user, db):
    """A dev/CLI-made profile is not handed to whoever shows Google the same e-mail."""
    existing = await make_user("ada@example.com", "Dev Ada")
    fake_google.add_code("c1", userinfo("g-mallory", "ADA@example.com", "Mallory"))
    r = await sign_in(client_for(), fake_google, "c1")
    assert (r.status_code, r.json()) == (
        409,
        {
            "detail": "An account with this e-mail address already exists and is not linked to this Google account; "
            "ask an administrator to allow linking"
        },
    )
    assert "session_token=" not in r.headers.get("set-cookie", "")
    async with db() as s:
        profiles = (await s.execute(text("SELECT id, name, google_id FROM profiles"))).all()
        sessions = (await s.execute(text("SELECT user_id FROM sessions"))).scalars().all()
    assert [(p.id, p.name, p.google_id) for p in profiles] == [(existing.user_id, "Dev Ada", None)]
    assert sessions == [existing.user_id]


@pytest.mark.parametrize(
    "info",
    [
        {"id": "g-3", "email": "z@example.com"},  # no verification flag at all
        {"id": "g-3", "email": "z@example.com", "verified_email": "true"},
        {"id": "g-3", "email": "z@example.com", "verified_email": None},
        {"id": "g-3", "email": "z@example.com", "email_verified": False},
    ],
)
async def test_an_email_google_does_not_call_verified_is_refused(
    client_for, fake_google, make_user, db, make_app, info
):
    """Even where linking is allowed: an unverified address neither signs in nor links."""
    await make_user("z@example.com", "Dev Z")
    fake_google.add_code("c", info)
    r = await sign_in(client_for(app_=make_app(link_verified_emails=True)), fake_google, "c")
    assert (r.status_code, r.json()) == (401, {"detail": "Google account e-mail is not verified"})
    async with db() as s:
        assert (await s.execute(text("SELECT google_id FROM profiles"))).scalars().all() == [None]


async def test_the_openid_connect_verification_flag_is_understood(client_for, fake_google):
    fake_google.add_code("c", {"id": "g-4", "email": "oidc@example.com", "email_verified": True})
    r = await sign_in(client_for(), fake_google, "c")
    assert r.status_code == 302


async def test_secure_cookie_when_configured(make_app, client_for, fake_google):
    fake_google.add_code("c", userinfo("g-1", "s@example.com"))
    client = client_for(app_=make_app(cookie_secure=True), base_url="https://testserver")
    r = await client.get("/api/auth/google")
    assert r.headers["set-cookie"].endswith("; Secure")
    query = parse_qs(urlsplit(r.headers["location"]).query)
    r = await client.get("/api/auth/google/callback", params=await consent(fake_google, query, "c"))
    assert r.status_code == 302
    session_cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("session_token="))
    assert re.fullmatch(
        r"session_token=[A-Za-z0-9_-]{64}; HttpOnly; Max-Age=2592000; Path=/; SameSite=lax; Secure", session_cookie
    )


async def test_callback_rejects_a_bad_state(client_for, fake_google, db):
    fake_google.add_code("c", userinfo("g-1", "x@example.com"))
    client = client_for()
    nonce, query = await start(client)
    params = await consent(fake_google, query, "c")
    bad = {"detail": "Invalid OAuth state"}
    cases = [
        (client, {"code": "c"}),  # no state
        (client, {"code": "c", "state": ""}),
        (client, {"code": "c", "state": "other-nonce./"}),  # someone else's state
        (client, {"code": "c", "state": nonce}),  # no separator
        (client_for(), params),  # right state, but not this browser (no nonce cookie)
    ]
    for who, p in cases:
        r = await who.get("/api/auth/google/callback", params=p)
        assert (r.status_code, r.json()) == (400, bad), p
    assert fake_google.token_requests == []
    assert await count(db, "sessions") == 0


async def test_callback_without_code_is_422(client_for):
    r = await client_for().get("/api/auth/google/callback", params={"state": "x./"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "code"]


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)", "evil"]
)
async def test_callback_never_redirects_off_site(client_for, fake_google, target):
    """Even with a tampered state (valid nonce, foreign redirect), the callback goes to `/`."""
    fake_google.add_code("c", userinfo("g-1", "x@example.com"))
    client = client_for()
    nonce, query = await start(client)
    params = await consent(fake_google, query, "c")
    params["state"] = f"{nonce}.{target}"
    r = await client.get("/api/auth/google/callback", params=params)
    assert r.status_code == 302
    assert r.headers["location"] == "/"


@pytest.mark.parametrize(
    ("mode", "code", "detail"),
    [
        ("token_error", "c", "Failed to exchange authorization code"),
        ("ok", "unknown-code", "Failed to exchange authorization code"),
        ("token_not_json", "c", "Failed to exchange authorization code"),
        ("no_access_token", "c", "No access token in response"),
        ("userinfo_error", "c", "Failed to fetch user info"),
        ("incomplete_userinfo", "c", "Incomplete user info from Google"),
    ],
)
async def test_provider_errors(client_for, fake_google, db, mode, code, detail):
    fake_google.add_code("c", userinfo("g-1", "x@example.com"))
    client = client_for()
    _, query = await start(client)
    params = await consent(fake_google, query, code)
    fake_google.mode = mode
    r = await client.get("/api/auth/google/callback", params=params)
    assert (r.status_code, r.json()) == (401, {"detail": detail})
    assert await count(db, "sessions") == 0
    assert await count(db, "profiles") == 0


async def test_userinfo_without_id_or_unverified_email(client_for, fake_google, db):
    fake_google.add_code("no-id", {"email": "x@example.com", "verified_email": True})
    fake_google.add_code("unverified", {"id": "g-2", "email": "y@example.com", "verified_email": False})
    for code, detail in (
        ("no-id", "Incomplete user info from Google"),
        ("unverified", "Google account e-mail is not verified"),
    ):
        r = await sign_in(client_for(), fake_google, code)
        assert (r.status_code, r.json()) == (401, {"detail": detail})
    assert await count(db, "profiles") == 0


async def test_unreachable_google(make_app, client_for, fake_google, settings):
    from icp_stack.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    client = client_for(app_=make_app(google_token_url=f"{dead}/token"))
    nonce, _ = await start(client)
    r = await client.get("/api/auth/google/callback", params={"code": "c", "state": f"{nonce}./"})
    assert (r.status_code, r.json()) == (401, {"detail": "Failed to exchange authorization code"})
    fake_google.add_code("c", userinfo("g-1", "x@example.com"))
    client = client_for(app_=make_app(google_userinfo_url=f"{dead}/userinfo"))
    nonce, _ = await start(client)
    r = await client.get("/api/auth/google/callback", params={"code": "c", "state": f"{nonce}./"})
    assert (r.status_code, r.json()) == (401, {"detail": "Failed to fetch user info"})
