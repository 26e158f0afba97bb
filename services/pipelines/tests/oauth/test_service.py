"""Provider settings (both spellings of the variables) and the catalog's `x-oauth` metadata."""

from __future__ import annotations

from typing import Any

import pytest

from icp_common.errors import InvalidInput
from icp_pipelines.catalog.loader import CatalogIndex
from icp_pipelines.oauth import service
from icp_pipelines.oauth.secret_ref import resolve_connection, resolve_secret, secret_ref
from icp_pipelines.oauth.settings import PROVIDERS, OAuthSettings
from icp_pipelines.settings import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for provider in PROVIDERS:
        for part in ("CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI"):
            monkeypatch.delenv(f"{provider.upper()}_{part}", raising=False)
            monkeypatch.delenv(f"INTERLOPER_OAUTH_{provider.upper()}_{part}", raising=False)
    return monkeypatch


def test_credentials_come_from_the_reference_variables_or_interloper_oauth(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AMAZON_CLIENT_ID", "plain-id")
    clean_env.setenv("AMAZON_CLIENT_SECRET", "plain-secret")
    clean_env.setenv("AMAZON_REDIRECT_URI", "https://ui.example/auth/amazon")
    clean_env.setenv("INTERLOPER_OAUTH_GOOGLE_CLIENT_ID", "prefixed-id")
    clean_env.setenv("GOOGLE_CLIENT_ID", "loses")
    clean_env.setenv("INTERLOPER_OAUTH_GOOGLE_CLIENT_SECRET", "prefixed-secret")
    clean_env.setenv("INTERLOPER_OAUTH_GOOGLE_REDIRECT_URI", "https://ui.example/auth/google")
    clean_env.setenv("INTERLOPER_OAUTH_TIMEOUT_SECONDS", "7")
    clean_env.setenv("INTERLOPER_OAUTH_PINTEREST_URL", "http://proxy.example/pinterest")
    oauth = Settings(internal_secret="x").oauth
    assert oauth.credentials("amazon").client_id == "plain-id"
    assert oauth.credentials("amazon").configured
    google = oauth.credentials("google")
    assert (google.client_id, google.client_secret, google.configured) == ("prefixed-id", "prefixed-secret", True)
    assert not oauth.credentials("tiktok").configured
    assert (oauth.timeout_seconds, oauth.pinterest_url) == (7.0, "http://proxy.example/pinterest")
    assert "prefixed-secret" not in repr(oauth)


def test_defaults_are_the_real_providers(clean_env: pytest.MonkeyPatch) -> None:
    oauth = OAuthSettings()
    assert (oauth.timeout_seconds, oauth.facebook_url, oauth.google_ads_version) == (
        30.0,
        "https://graph.facebook.com",
        "v20",
    )
    assert service.EXCHANGES["microsoft"].url(oauth) == "https://login.microsoftonline.com/common/oauth2/v2.0/token"


def catalog(*schemas: Any) -> CatalogIndex:
    return CatalogIndex(dump={f"c{i}": {"kind": "connection", "config_schema": s} for i, s in enumerate(schemas)})


def test_metadata_of_the_first_catalog_entry_per_provider_wins() -> None:
    index = catalog(
        None,
        {"x-oauth": "not a block"},
        {"x-oauth": {"provider": 3}},
        {"x-oauth": {"provider": "pinterest", "auth_url": "https://first", "label": "Pinterest", "icon": 5}},
        {"x-oauth": {"provider": "pinterest", "auth_url": "https://second"}},
    )
    oauth = OAuthSettings(pinterest_client_id="p", pinterest_client_secret="s", pinterest_redirect_uri="r")
    assert [p.model_dump() for p in service.list_providers(oauth, index) if p.key == "pinterest"] == [
        {
            "key": "pinterest",
            "client_id": "p",
            "redirect_uri": "r",
            "auth_url": "https://first",
            "label": "Pinterest",
            "icon": "",
        }
    ]


# ------------------------------------------- the platform's secret by reference (issue 15)

GOOGLE_APP = OAuthSettings(google_client_id="g", google_client_secret="g-secret", google_redirect_uri="r")


def google_schema(fields: dict[str, str] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"provider": "google", "auth_url": "https://a"}
    if fields is not None:
        block["fields"] = fields
    return {"properties": {}, "x-oauth": block}


def test_a_connection_gets_the_secret_of_its_own_provider_only() -> None:
    data = {"client_id": "g", "client_secret": secret_ref("google"), "refresh_token": "r"}
    assert resolve_connection(google_schema(), data, GOOGLE_APP) == {**data, "client_secret": "g-secret"}
    assert data["client_secret"] == secret_ref("google")  # the stored data is not changed
    amazon_ref = {**data, "client_secret": secret_ref("amazon")}
    assert resolve_connection(google_schema(), amazon_ref, GOOGLE_APP) == amazon_ref
    assert resolve_connection({"properties": {}}, data, GOOGLE_APP) == data  # no x-oauth block
    no_app = OAuthSettings(google_client_secret="")
    assert resolve_connection(google_schema(), data, no_app) == data  # no platform app
    other_field = {**data, "note": secret_ref("google")}
    assert resolve_connection(google_schema(), other_field, GOOGLE_APP)["note"] == secret_ref("google")


def test_the_field_is_the_one_x_oauth_fields_maps_client_secret_to() -> None:
    schema = google_schema({"client_id": "app_id", "client_secret": "app_secret"})
    data = {"app_id": "g", "app_secret": secret_ref("google"), "client_secret": secret_ref("google")}
    resolved = resolve_connection(schema, data, GOOGLE_APP)
    assert (resolved["app_secret"], resolved["client_secret"]) == ("g-secret", secret_ref("google"))


def test_lookups_resolve_the_reference_for_their_provider_only() -> None:
    assert resolve_secret("typed-by-hand", "google", GOOGLE_APP) == "typed-by-hand"
    assert resolve_secret(secret_ref("google"), "google", GOOGLE_APP) == "g-secret"
    for value, provider in [
        (secret_ref("google"), "amazon"),
        (secret_ref("amazon"), "amazon"),  # not configured
        ("platform:oauth/google/other", "google"),
        ("platform:oauth/nope/client_secret", "nope"),
    ]:
        with pytest.raises(InvalidInput):
            resolve_secret(value, provider, GOOGLE_APP)
