"""OpenID Connect sign-in against a real OpenID provider (oidc-provider-mock, two instances: two
issuers): the login redirect (state, nonce, PKCE S256, the state cookie), the session it opens,
and every refusal -- bad state, wrong nonce, forged/expired/foreign-key tokens, key rotation,
unverified e-mail, domain not allowed, account takeover, provider down -- each ending on a page
with a reason and nothing written."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib import jose
from fastapi import FastAPI
from sqlalchemy import text

from icp_common.config_errors import CONFIG_ERROR_EXIT, load_settings
from icp_identity.auth.cookies import OIDC_STATE_COOKIE
from icp_identity.settings import Settings
from icp_testing.fake_google import userinfo
from icp_testing.oidc import OidcProviderServer, serve_oidc_provider

from .test_google import sign_in as google_sign_in

SESSION_COOKIE_RE = re.compile(r"session_token=([A-Za-z0-9_-]{64}); HttpOnly; Max-Age=2592000; Path=/; SameSite=lax")


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProviderServer]:
    with serve_oidc_provider() as server:
        yield server


@pytest.fixture(scope="module")
def other_provider() -> Iterator[OidcProviderServer]:
    with serve_oidc_provider() as server:
        yield server


@pytest.fixture(autouse=True)
def reset_providers(provider: OidcProviderServer, other_provider: OidcProviderServer) -> None:
    provider.reset()
    other_provider.reset()


def provider_config(name: str, server: OidcProviderServer, **extra: Any) -> dict[str, Any]:
    return {"name": name, "issuer": server.url, "client_id": f"{name}-client", "client_secret": "s3cret", **extra}


@pytest.fixture(scope="module")
def oidc_apps(make_app, provider, other_provider) -> dict[str, FastAPI]:
    providers = [
        provider_config("acme", provider, display_name="Acme SSO"),
        provider_config("other", other_provider),
        provider_config("corp", provider, allowed_domains=["corp.example"]),
        provider_config("lax", other_provider, require_verified_email=False),
        provider_config("down", OidcProviderServer(url="http://127.0.0.1:9")),
    ]
    return {
        "default": make_app(oidc_providers=providers),
        "linking": make_app(oidc_providers=providers, link_verified_emails=True),
    }


@pytest.fixture
def oidc_app(oidc_apps) -> FastAPI:
    return oidc_apps["default"]


async def begin(client: httpx.AsyncClient, name: str = "acme", redirect: str | None = None) -> str:
    r = await client.get(f"/api/auth/oidc/{name}/login", params={"redirect": redirect} if redirect else {})
    assert r.status_code == 302, r.text
    return str(r.headers["location"])


def at_provider(server: OidcProviderServer, url: str, sub: str) -> str:
    with httpx.Client(timeout=10) as browser:
        return server.authorize(browser, url, sub)


async def sign_in(
    client: httpx.AsyncClient, server: OidcProviderServer, sub: str, name: str = "acme", redirect: str | None = None
) -> httpx.Response:
    callback = at_provider(server, await begin(client, name, redirect), sub)
    assert callback.startswith(f"http://testserver/api/auth/oidc/{name}/callback?")
    return await client.get(callback)


async def scalar(db, sql: str) -> Any:
    async with db() as s:
        return (await s.execute(text(sql))).scalar_one()


def refused(r: httpx.Response, status: int, reason: str) -> None:
    """A failed sign-in: an HTML page with the reason, no session cookie, the state cookie cleared."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert reason in r.text
    assert "Traceback" not in r.text
    assert "session_token=" not in r.headers.get("set-cookie", "")
    assert f'{OIDC_STATE_COOKIE}=""' in r.headers.get("set-cookie", "")


# ----------------------------------------------------------------------------------- happy path


async def test_login_redirects_with_state_nonce_and_pkce(client_for, oidc_app, provider):
    client = client_for(app_=oidc_app)
    r = await client.get("/api/auth/oidc/acme/login", params={"redirect": "/invite/abc"})
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{provider.url}/oauth2/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "acme-client"
    assert query["redirect_uri"] == "http://testserver/api/auth/oidc/acme/callback"
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and len(query["code_challenge"]) == 43
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{OIDC_STATE_COOKIE}=")
    assert "HttpOnly; Max-Age=600; Path=/api/auth/oidc; SameSite=lax" in cookie
    # Fresh values every time.
    again = parse_qs(urlsplit(await begin(client_for(app_=oidc_app))).query)
    assert again["state"][0] != query["state"] and again["nonce"][0] != query["nonce"]


async def test_full_sign_in_opens_a_session_like_google(client_for, oidc_app, provider, db):
    provider.set_user("alice-sub", email="alice@acme.example", email_verified=True, name="Alice")
    client = client_for(app_=oidc_app)
    url = await begin(client, redirect="/invite/tok")
    r = await client.get(at_provider(provider, url, "alice-sub"))
    assert r.status_code == 302
    assert r.headers["location"] == "/invite/tok"
    assert SESSION_COOKIE_RE.search(r.headers["set-cookie"])
    assert f'{OIDC_STATE_COOKIE}=""' in r.headers["set-cookie"]
    # The code was exchanged with the verifier behind the S256 challenge of the login URL.
    verifier = provider.token_requests[-1]["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert parse_qs(urlsplit(url).query)["code_challenge"] == [challenge]
    me = await client_for(client.cookies["session_token"], app_=oidc_app).get("/api/auth/me")
    assert me.status_code == 200
    body = me.json()
    assert (body["email"], body["name"], body["organisation"]) == ("alice@acme.example", "Alice", None)
    row = await scalar(db, "SELECT issuer || ' ' || subject FROM oidc_identities")
    assert row == f"{provider.url} alice-sub"
    # The same (issuer, subject) signs into the same profile, with its new e-mail.
    provider.set_user("alice-sub", email="alice@new.example", email_verified=True, name="Alice")
    r = await sign_in(client_for(app_=oidc_app), provider, "alice-sub")
    assert r.status_code == 302 and r.headers["location"] == "/"
    assert await scalar(db, "SELECT count(*) FROM profiles") == 1
    assert await scalar(db, "SELECT email FROM profiles") == "alice@new.example"


async def test_unknown_provider_is_404_json(client_for, oidc_app):
    client = client_for(app_=oidc_app)
    for path in ("/api/auth/oidc/nope/login", "/api/auth/oidc/nope/callback?code=x&state=y"):
        r = await client.get(path)
        assert r.status_code == 404
        assert r.json() == {"detail": "Unknown sign-in provider"}


# ------------------------------------------------------------------------------------- refusals


async def test_a_callback_without_the_browsers_state_is_refused(client_for, oidc_app, provider, db):
    provider.set_user("mallory", email="mallory@acme.example", email_verified=True)
    victim = client_for(app_=oidc_app)
    callback = at_provider(provider, await begin(client_for(app_=oidc_app)), "mallory")
    # Login CSRF: the attacker's callback URL opened in the victim's browser (no state cookie).
    refused(await victim.get(callback), 400, "Sign-in state is missing")
    # The victim's own state cookie does not match the attacker's state either.
    await begin(victim)
    refused(await victim.get(callback), 400, "does not match")
    # A tampered state cookie.
    attacker = client_for(app_=oidc_app)
    url = await begin(attacker)
    callback = at_provider(provider, url, "mallory")
    value = attacker.cookies[OIDC_STATE_COOKIE]
    attacker.cookies.set(OIDC_STATE_COOKIE, value[:-4] + "AAAA", path="/api/auth/oidc")
    refused(await attacker.get(callback), 400, "Sign-in state")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0
    assert await scalar(db, "SELECT count(*) FROM sessions") == 0


async def test_state_of_one_provider_does_not_finish_another(client_for, oidc_app, provider):
    provider.set_user("bob", email="bob@acme.example", email_verified=True)
    client = client_for(app_=oidc_app)
    callback = at_provider(provider, await begin(client, "acme"), "bob")
    refused(await client.get(callback.replace("/oidc/acme/", "/oidc/other/")), 400, "Sign-in state")


async def test_an_id_token_for_another_nonce_is_refused(client_for, oidc_app, provider, db):
    provider.set_user("bob", email="bob@acme.example", email_verified=True)
    client = client_for(app_=oidc_app)
    url = await begin(client)
    query = parse_qs(urlsplit(url).query)
    forged = url.replace(f"nonce={query['nonce'][0]}", "nonce=replayed-nonce-of-another-login")
    r = await client.get(at_provider(provider, forged, "bob"))
    refused(r, 401, "ID token is invalid")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda p, c: p.sign({**c, "exp": _now() - 600, "iat": _now() - 4000}), id="expired"),
        pytest.param(lambda p, c: p.sign({**c, "aud": "someone-else"}), id="other-audience"),
        pytest.param(lambda p, c: p.sign({**c, "iss": "https://evil.example"}), id="other-issuer"),
        pytest.param(
            # Same key id as the provider's, but the attacker's own key.
            lambda p, c: jose.jwt.encode(
                {"alg": "RS256", "kid": p.signing_key.as_dict()["kid"]},
                {**c, "sub": "admin"},
                jose.RSAKey.generate_key(is_private=True).as_dict(is_private=True),
            ).decode(),
            id="foreign-key",
        ),
        pytest.param(
            lambda p, c: jose.jwt.encode({"alg": "HS256"}, c, p.signing_key.as_dict()["n"].encode()).decode(),
            id="hs256-with-public-key",
        ),
        pytest.param(lambda p, c: "not.a.jwt", id="garbage"),
    ],
)
async def test_invalid_id_tokens_are_refused(client_for, oidc_app, provider, db, forge):
    provider.set_user("bob", email="bob@acme.example", email_verified=True)
    provider.rewrite_id_token = lambda claims, header: forge(provider, claims)
    r = await sign_in(client_for(app_=oidc_app), provider, "bob")
    refused(r, 401, "ID token is invalid")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0


async def test_a_rotated_signing_key_is_fetched_again(client_for, oidc_app, provider):
    provider.set_user("carol", email="carol@acme.example", email_verified=True)
    assert (await sign_in(client_for(app_=oidc_app), provider, "carol")).status_code == 302  # JWKS now cached
    old_kid = provider.signing_key.as_dict()["kid"]
    provider.rotate_key()
    assert provider.signing_key.as_dict()["kid"] != old_kid
    r = await sign_in(client_for(app_=oidc_app), provider, "carol")
    assert r.status_code == 302, r.text
    assert SESSION_COOKIE_RE.search(r.headers["set-cookie"])


async def test_an_unverified_email_is_refused(client_for, oidc_app, provider, db):
    provider.set_user("dave", email="dave@acme.example", email_verified=False)
    refused(await sign_in(client_for(app_=oidc_app), provider, "dave"), 403, "not verified")
    provider.set_user("dave", email="dave@acme.example")  # no claim at all is not verified either
    refused(await sign_in(client_for(app_=oidc_app), provider, "dave"), 403, "not verified")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0


async def test_an_unverified_email_signs_in_where_the_provider_is_trusted(client_for, oidc_app, other_provider):
    other_provider.set_user("erin", email="erin@lax.example")
    assert (await sign_in(client_for(app_=oidc_app), other_provider, "erin", name="lax")).status_code == 302


async def test_a_domain_not_allowed_is_refused(client_for, oidc_app, provider, db):
    provider.set_user("frank", email="frank@elsewhere.example", email_verified=True)
    refused(await sign_in(client_for(app_=oidc_app), provider, "frank", name="corp"), 403, "domain is not allowed")
    provider.set_user("gina", email="gina@CORP.example", email_verified=True)
    assert (await sign_in(client_for(app_=oidc_app), provider, "gina", name="corp")).status_code == 302
    assert await scalar(db, "SELECT count(*) FROM profiles") == 1


async def test_a_second_provider_cannot_take_over_an_account_by_email(
    client_for, oidc_app, provider, other_provider, db
):
    provider.set_user("owner", email="owner@acme.example", email_verified=True)
    assert (await sign_in(client_for(app_=oidc_app), provider, "owner")).status_code == 302
    other_provider.set_user("attacker", email="owner@acme.example", email_verified=True)
    r = await sign_in(client_for(app_=oidc_app), other_provider, "attacker", name="other")
    refused(r, 409, "already exists and is not linked to this sign-in")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 1
    assert await scalar(db, "SELECT count(*) FROM oidc_identities") == 1
    assert await scalar(db, "SELECT count(*) FROM sessions") == 1


async def test_an_oidc_sign_in_cannot_take_over_a_google_account(client_for, oidc_app, provider, fake_google, db):
    fake_google.add_code("g", userinfo("g-1", "owner@acme.example", "Owner"))
    assert (await google_sign_in(client_for(), fake_google, "g")).status_code == 302
    provider.set_user("attacker", email="owner@acme.example", email_verified=True)
    refused(await sign_in(client_for(app_=oidc_app), provider, "attacker"), 409, "already exists")
    assert await scalar(db, "SELECT count(*) FROM oidc_identities") == 0


async def test_linking_by_verified_email_where_the_deployment_allows_it(
    client_for, oidc_apps, provider, other_provider, db
):
    linking = oidc_apps["linking"]
    provider.set_user("h1", email="hana@acme.example", email_verified=True)
    first = await sign_in(client_for(app_=linking), provider, "h1")
    other_provider.set_user("h2", email="hana@acme.example", email_verified=True)
    second = await sign_in(client_for(app_=linking), other_provider, "h2", name="other")
    assert second.status_code == 302
    ids = []
    for r in (first, second):
        token = SESSION_COOKIE_RE.search(r.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
        ids.append((await client_for(token, app_=linking).get("/api/auth/me")).json()["id"])
    assert ids[0] == ids[1]
    assert await scalar(db, "SELECT count(*) FROM profiles") == 1
    assert await scalar(db, "SELECT count(*) FROM oidc_identities") == 2


async def test_linking_never_trusts_an_unverified_side(
    client_for, oidc_apps, provider, other_provider, fake_google, db
):
    linking = oidc_apps["linking"]
    # The existing profile came from a provider that does not verify e-mails...
    other_provider.set_user("i1", email="ivan@acme.example")
    assert (await sign_in(client_for(app_=linking), other_provider, "i1", name="lax")).status_code == 302
    # ...so neither a verified OIDC sign-in nor Google may join it, even with linking allowed.
    provider.set_user("i2", email="ivan@acme.example", email_verified=True)
    refused(await sign_in(client_for(app_=linking), provider, "i2"), 409, "already exists")
    fake_google.add_code("g", userinfo("g-ivan", "ivan@acme.example"))
    google = await google_sign_in(client_for(app_=linking), fake_google, "g")
    assert google.status_code == 409
    # And an unverified assertion never joins a verified profile.
    provider.set_user("j1", email="judy@acme.example", email_verified=True)
    assert (await sign_in(client_for(app_=linking), provider, "j1")).status_code == 302
    other_provider.set_user("j2", email="judy@acme.example")
    refused(await sign_in(client_for(app_=linking), other_provider, "j2", name="lax"), 409, "already exists")
    assert await scalar(db, "SELECT count(*) FROM profiles") == 2


async def test_provider_down_ends_on_a_page_not_a_500(client_for, oidc_app, db):
    client = client_for(app_=oidc_app)
    r = await client.get("/api/auth/oidc/down/login")
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert "sign-in provider is unavailable" in r.text
    r = await client.get("/api/auth/oidc/down/callback", params={"code": "c", "state": "s"})
    assert r.status_code == 400  # no state of ours: refused before any call to the provider
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0


@pytest.mark.parametrize(
    ("status", "page_status", "reason"),
    [(500, 502, "sign-in provider is unavailable"), (400, 401, "refused the authorization code")],
)
async def test_a_failing_token_endpoint_ends_on_a_page(client_for, oidc_app, provider, db, status, page_status, reason):
    provider.set_user("kim", email="kim@acme.example", email_verified=True)
    provider.token_status = status
    refused(await sign_in(client_for(app_=oidc_app), provider, "kim"), page_status, reason)
    assert await scalar(db, "SELECT count(*) FROM profiles") == 0


async def test_an_email_missing_from_the_id_token_is_read_from_userinfo(client_for, oidc_app, provider, db):
    """Providers with small ID tokens: the e-mail (and its verification) come from userinfo."""
    provider.set_user("lena", email="lena@acme.example", email_verified=True, name="Lena")
    provider.rewrite_id_token = lambda claims, header: provider.sign(
        {k: v for k, v in claims.items() if k not in ("email", "email_verified", "name")}
    )
    r = await sign_in(client_for(app_=oidc_app), provider, "lena")
    assert r.status_code == 302, r.text
    assert await scalar(db, "SELECT email || ' ' || name FROM profiles") == "lena@acme.example Lena"
    # Userinfo does not verify what it does not say.
    provider.set_user("lena", email="lena@acme.example", name="Lena")
    refused(await sign_in(client_for(app_=oidc_app), provider, "lena"), 403, "not verified")


async def test_provider_refusing_at_consent_ends_on_a_page(client_for, oidc_app, provider):
    client = client_for(app_=oidc_app)
    url = await begin(client)
    state = parse_qs(urlsplit(url).query)["state"][0]
    r = await client.get("/api/auth/oidc/acme/callback", params={"error": "access_denied", "state": state})
    refused(r, 401, "refused the sign-in (access_denied)")


# ------------------------------------------------------------------------ the web UI's button


async def test_google_button_lists_the_providers_when_google_is_not_configured(make_app, client_for, provider):
    providers = [
        provider_config("acme", provider, display_name="<script>alert(1)</script>"),
        provider_config("other", provider),
    ]
    app = make_app(google_client_id="", oidc_providers=providers, dev_login=False)
    client = client_for(app_=app)
    r = await client.get("/api/auth/google", params={"redirect": "/jobs"})
    assert r.status_code == 307
    assert r.headers["location"] == "/api/auth/oidc?redirect=%2Fjobs"
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    assert 'href="/api/auth/oidc/acme/login?redirect=%2Fjobs"' in page.text
    assert 'href="/api/auth/oidc/other/login?redirect=%2Fjobs"' in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "dev-login" not in page.text
    # Off-site redirects are dropped here too.
    page = await client.get("/api/auth/oidc", params={"redirect": "//evil.example"})
    assert "evil" not in page.text


async def test_google_stays_first_when_configured(client_for, oidc_app):
    r = await client_for(app_=oidc_app).get("/api/auth/google")
    assert r.status_code == 307 and "/api/auth/oidc" not in r.headers["location"]


async def test_no_providers_no_page(client_for):
    r = await client_for().get("/api/auth/oidc")
    assert r.status_code == 404 and r.json() == {"detail": "No OpenID Connect providers configured"}


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        json.dumps(
            [{"name": "Bad Name", "issuer": "https://id.example", "client_id": "c", "client_secret": "TOPSECRET"}]
        ),
        json.dumps([{"name": "a", "issuer": "ftp://id.example", "client_id": "c", "client_secret": "TOPSECRET"}]),
        json.dumps([{"name": "a", "issuer": "https://id.example", "client_id": "c", "scopes": ["email"]}]),
        json.dumps([{"name": "a", "issuer": "https://id.example", "client_id": "c", "surprise": 1}]),
        json.dumps([{"name": "a", "issuer": "https://id.example", "client_secret": "TOPSECRET"}]),
        json.dumps([{"name": "a", "issuer": "https://i.example", "client_id": "c", "client_secret": "TOPSECRET"}] * 2),
    ],
)
def test_a_bad_provider_list_is_a_configuration_error(monkeypatch, capsys, value):
    monkeypatch.setenv("INTERLOPER_AUTH_OIDC_PROVIDERS", value)
    with pytest.raises(SystemExit) as exit_:
        load_settings("interloper-identity", Settings)
    assert exit_.value.code == CONFIG_ERROR_EXIT
    err = capsys.readouterr().err
    assert "configuration error: INTERLOPER_AUTH_OIDC_PROVIDERS" in err
    assert "TOPSECRET" not in err


def test_a_good_provider_list_loads(monkeypatch):
    value = [{"name": "okta", "issuer": "https://acme.okta.com", "client_id": "c", "allowed_domains": ["Acme.com"]}]
    monkeypatch.setenv("INTERLOPER_AUTH_OIDC_PROVIDERS", json.dumps(value))
    (okta,) = Settings().auth.oidc_providers
    assert (okta.allowed_domains, okta.require_verified_email, okta.scopes) == (
        ["acme.com"],
        True,
        ["openid", "email", "profile"],
    )


async def test_sign_ins_and_failed_sign_ins_are_audited(client_for, oidc_app, provider, db):
    """Issue 18.3: a sign-in is an audit entry in its transaction; a refused one is recorded as
    denied, in the organisation of the profile the provider named (none for an unknown one)."""
    provider.set_user("hank", email="hank@acme.example", email_verified=True)
    r = await sign_in(client_for(app_=oidc_app), provider, "hank")
    assert r.status_code == 302
    member = client_for(r.cookies["session_token"], app_=oidc_app)
    org = (await member.post("/api/organisations", json={"name": "Hank's"})).json()["id"]
    provider.set_user("hank", email="hank@acme.example", email_verified=False)
    refused(await sign_in(client_for(app_=oidc_app), provider, "hank"), 403, "not verified")
    provider.set_user("ivy", email="ivy@acme.example", email_verified=False)  # nobody we know
    refused(await sign_in(client_for(app_=oidc_app), provider, "ivy"), 403, "not verified")
    async with db() as s:
        rows = (await s.execute(text("SELECT organisation_id, entry FROM audit_entries ORDER BY timestamp"))).all()
    mine = [(str(o) if o else None, e["action"], e["outcome"], e["actor"]["email"]) for o, e in rows]
    assert [m for m in mine if m[1].startswith("auth.")] == [
        (None, "auth.sign_in", "success", "hank@acme.example"),  # no organisation yet
        (org, "auth.sign_in_failed", "denied", "hank@acme.example"),
        (None, "auth.sign_in_failed", "denied", "ivy@acme.example"),
    ]
    assert all(
        e["target"] == {"type": "sign_in_method", "id": "oidc:acme"}
        for o, e in rows
        if e["action"].startswith("auth.sign_in")
    )
