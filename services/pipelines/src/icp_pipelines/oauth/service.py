"""The configured OAuth providers and the server-side exchange of an authorization code (spec 2.14).

Each provider receives exactly the request the reference sends: amazon, criteo, google and tiktok
a JSON POST, linkedin, microsoft, snapchat and pinterest a form POST (pinterest with HTTP Basic as
well), facebook a GET with query parameters. TikTok's body is `{auth_code, app_id, secret}`; every
other provider gets `grant_type=authorization_code, code, redirect_uri, client_id, client_secret`.

The answer is the provider's JSON plus `client_id` and `client_secret` (the web UI stores them in the
connection resource); `client_secret` is a reference to the platform's secret, never the secret itself
(`secret_ref.py`), and only an editor may exchange a code (issue 15).

A provider error status is a 500 `Failed to exchange auth code: <its body>`, a timeout or network
failure a 502. TikTok reports errors in a 200 body (`code` != 0): that is a
provider error too, and its `data` (`access_token`, `advertiser_ids`, ...) is also copied to the top
level so that the catalog's `x-oauth.fields` (`access_token`) find it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from icp_common.errors import InvalidInput

from ..catalog.loader import CatalogIndex
from .http import ProviderError, join, redact
from .schemas import ProviderInfo
from .secret_ref import secret_ref
from .settings import PROVIDERS, OAuthSettings

log = logging.getLogger(__name__)

PREFIX = "Failed to exchange auth code: "
MAX_DETAIL = 2000


@dataclass(frozen=True)
class Exchange:
    """How one provider wants the code: HTTP method, body encoding, token URL."""

    method: Literal["GET", "POST"]
    encoding: Literal["query", "json", "form"]
    url: Callable[[OAuthSettings], str]
    basic_auth: bool = False
    tiktok_body: bool = False


EXCHANGES: dict[str, Exchange] = {
    "amazon": Exchange("POST", "json", lambda s: join(s.amazon_auth_url, "/auth/o2/token")),
    "criteo": Exchange("POST", "json", lambda s: join(s.criteo_url, "/oauth2/token")),
    "facebook": Exchange(
        "GET", "query", lambda s: join(s.facebook_url, f"/{s.facebook_oauth_version}/oauth/access_token")
    ),
    "google": Exchange("POST", "json", lambda s: join(s.google_oauth_url, "/token")),
    "linkedin": Exchange("POST", "form", lambda s: join(s.linkedin_oauth_url, "/oauth/v2/accessToken")),
    "microsoft": Exchange("POST", "form", lambda s: join(s.microsoft_url, f"/{s.microsoft_tenant}/oauth2/v2.0/token")),
    "pinterest": Exchange("POST", "form", lambda s: join(s.pinterest_url, "/v5/oauth/token"), basic_auth=True),
    "snapchat": Exchange("POST", "form", lambda s: join(s.snapchat_accounts_url, "/login/oauth2/access_token")),
    "tiktok": Exchange(
        "POST", "json", lambda s: join(s.tiktok_url, "/open_api/v1.3/oauth2/access_token"), tiktok_body=True
    ),
}
assert tuple(EXCHANGES) == PROVIDERS


def oauth_metadata(catalog: CatalogIndex) -> dict[str, dict[str, Any]]:
    """Provider key -> the `x-oauth` block of the first catalog entry that declares it."""
    found: dict[str, dict[str, Any]] = {}
    for entry in catalog.dump.values():
        schema = entry.get("config_schema")
        block = schema.get("x-oauth") if isinstance(schema, dict) else None
        if isinstance(block, dict) and isinstance(block.get("provider"), str):
            found.setdefault(block["provider"], block)
    return found


def list_providers(settings: OAuthSettings, catalog: CatalogIndex) -> list[ProviderInfo]:
    """Every provider whose three settings are set, in the spec's order (never fails)."""
    metadata = oauth_metadata(catalog)
    providers = []
    for key in PROVIDERS:
        credentials = settings.credentials(key)
        if not credentials.configured:
            continue
        meta = metadata.get(key, {})
        providers.append(
            ProviderInfo(
                key=key,
                client_id=credentials.client_id,
                redirect_uri=credentials.redirect_uri,
                auth_url=_text(meta.get("auth_url")),
                label=_text(meta.get("label")),
                icon=_text(meta.get("icon")),
            )
        )
    return providers


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def exchange_code(http: httpx.AsyncClient, settings: OAuthSettings, provider: str, code: str) -> dict[str, Any]:
    """Exchange `code` at `provider`; the provider's JSON plus the app's `client_id` and the
    reference to its `client_secret` (the secret itself never leaves the platform)."""
    spec = EXCHANGES.get(provider)
    if spec is None:
        raise InvalidInput(f"Unknown OAuth provider: {provider}")
    credentials = settings.credentials(provider)
    if not credentials.configured:
        raise InvalidInput(f"OAuth provider {provider} is not configured")

    fields: dict[str, str]
    if spec.tiktok_body:
        fields = {"auth_code": code, "app_id": credentials.client_id, "secret": credentials.client_secret}
    else:
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": credentials.redirect_uri,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
    url = spec.url(settings)
    extra: dict[str, Any] = {}
    if spec.basic_auth:
        extra["auth"] = httpx.BasicAuth(credentials.client_id, credentials.client_secret)
    try:
        if spec.encoding == "query":
            response = await http.get(url, params=fields)
        elif spec.encoding == "form":
            response = await http.post(url, data=fields, **extra)
        else:
            response = await http.post(url, json=fields, **extra)
    except httpx.TimeoutException:
        log.warning("oauth %s: no answer from %s within %ss", provider, url, settings.timeout_seconds)
        raise ProviderError(502, f"{PREFIX}{provider} did not answer within {settings.timeout_seconds:g} s") from None
    except httpx.TransportError as exc:
        log.warning("oauth %s: cannot reach %s: %r", provider, url, exc)
        raise ProviderError(502, f"{PREFIX}cannot reach {provider} ({type(exc).__name__})") from None

    if response.is_error:
        log.warning("oauth %s: %s answered %s", provider, redact(response.request.url), response.status_code)
        raise ProviderError(500, PREFIX + response.text[:MAX_DETAIL])
    try:
        tokens = response.json()
    except json.JSONDecodeError as exc:
        log.warning("oauth %s: %s answered %s with a body that is not JSON", provider, url, response.status_code)
        raise ProviderError(500, f"{PREFIX}{exc}") from None
    if not isinstance(tokens, dict):
        raise ProviderError(500, f"{PREFIX}{response.text[:MAX_DETAIL]}")
    if spec.tiktok_body:
        if tokens.get("code", 0) != 0:
            log.warning("oauth tiktok: error code %s", tokens.get("code"))
            raise ProviderError(500, PREFIX + response.text[:MAX_DETAIL])
        data = tokens.get("data")
        if isinstance(data, dict):
            tokens = {**data, **tokens}
    log.info("oauth %s: authorization code exchanged", provider)
    return {**tokens, "client_id": credentials.client_id, "client_secret": secret_ref(provider)}
