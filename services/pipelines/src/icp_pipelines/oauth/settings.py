"""Settings of the ad-platform OAuth exchange and the external look-ups (`INTERLOPER_OAUTH_*`).

Provider credentials keep the reference's names (`AMAZON_CLIENT_ID`, ... spec 1.4) and can also be
given as `INTERLOPER_OAUTH_AMAZON_CLIENT_ID`, ... (which wins when both are set). They are read
once at start-up, like every other setting. Every upstream base URL is a setting of its own,
defaulting to the real provider, so tests, local runs and corporate proxies can redirect them; a
base URL may carry a path prefix (`http://127.0.0.1:9000/api.amazon.com`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROVIDERS = ("amazon", "criteo", "facebook", "google", "linkedin", "microsoft", "pinterest", "snapchat", "tiktok")


@dataclass(frozen=True)
class Credentials:
    """The platform's own OAuth app for one provider."""

    client_id: str
    client_secret: str
    redirect_uri: str

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret and self.redirect_uri)


def _credential(provider: str, part: str, secret: bool = False) -> Any:
    name = f"{provider}_{part}".upper()
    return Field(
        SecretStr("") if secret else "",
        validation_alias=AliasChoices(f"INTERLOPER_OAUTH_{name}", name),
        description=f"{provider} OAuth app: {part.replace('_', ' ')} (also {name})",
    )


def _url(default: str, what: str) -> Any:
    return Field(default, description=f"Base URL of {what}")


class OAuthSettings(BaseSettings):
    """Provider apps, upstream URLs and the outbound HTTP client of `/api/oauth` and `/api/external`."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_OAUTH_", extra="ignore", populate_by_name=True)

    amazon_client_id: str = _credential("amazon", "client_id")
    amazon_client_secret: SecretStr = _credential("amazon", "client_secret", secret=True)
    amazon_redirect_uri: str = _credential("amazon", "redirect_uri")
    criteo_client_id: str = _credential("criteo", "client_id")
    criteo_client_secret: SecretStr = _credential("criteo", "client_secret", secret=True)
    criteo_redirect_uri: str = _credential("criteo", "redirect_uri")
    facebook_client_id: str = _credential("facebook", "client_id")
    facebook_client_secret: SecretStr = _credential("facebook", "client_secret", secret=True)
    facebook_redirect_uri: str = _credential("facebook", "redirect_uri")
    google_client_id: str = _credential("google", "client_id")
    google_client_secret: SecretStr = _credential("google", "client_secret", secret=True)
    google_redirect_uri: str = _credential("google", "redirect_uri")
    linkedin_client_id: str = _credential("linkedin", "client_id")
    linkedin_client_secret: SecretStr = _credential("linkedin", "client_secret", secret=True)
    linkedin_redirect_uri: str = _credential("linkedin", "redirect_uri")
    microsoft_client_id: str = _credential("microsoft", "client_id")
    microsoft_client_secret: SecretStr = _credential("microsoft", "client_secret", secret=True)
    microsoft_redirect_uri: str = _credential("microsoft", "redirect_uri")
    pinterest_client_id: str = _credential("pinterest", "client_id")
    pinterest_client_secret: SecretStr = _credential("pinterest", "client_secret", secret=True)
    pinterest_redirect_uri: str = _credential("pinterest", "redirect_uri")
    snapchat_client_id: str = _credential("snapchat", "client_id")
    snapchat_client_secret: SecretStr = _credential("snapchat", "client_secret", secret=True)
    snapchat_redirect_uri: str = _credential("snapchat", "redirect_uri")
    tiktok_client_id: str = _credential("tiktok", "client_id")
    tiktok_client_secret: SecretStr = _credential("tiktok", "client_secret", secret=True)
    tiktok_redirect_uri: str = _credential("tiktok", "redirect_uri")

    amazon_auth_url: str = _url("https://api.amazon.com", "Login with Amazon (North America; code exchange too)")
    amazon_auth_url_eu: str = _url("https://api.amazon.co.uk", "Login with Amazon (Europe)")
    amazon_auth_url_fe: str = _url("https://api.amazon.co.jp", "Login with Amazon (Far East)")
    amazon_ads_url: str = _url("https://advertising-api.amazon.com", "the Amazon Ads API (North America)")
    amazon_ads_url_eu: str = _url("https://advertising-api-eu.amazon.com", "the Amazon Ads API (Europe)")
    amazon_ads_url_fe: str = _url("https://advertising-api-fe.amazon.com", "the Amazon Ads API (Far East)")
    criteo_url: str = _url("https://api.criteo.com", "the Criteo API")
    facebook_url: str = _url("https://graph.facebook.com", "the Facebook Graph API")
    google_oauth_url: str = _url("https://oauth2.googleapis.com", "Google's OAuth token endpoint")
    google_ads_url: str = _url("https://googleads.googleapis.com", "the Google Ads API")
    linkedin_oauth_url: str = _url("https://www.linkedin.com", "LinkedIn's OAuth endpoints")
    linkedin_api_url: str = _url("https://api.linkedin.com", "the LinkedIn Marketing API")
    microsoft_url: str = _url("https://login.microsoftonline.com", "the Microsoft identity platform")
    pinterest_url: str = _url("https://api.pinterest.com", "the Pinterest API")
    snapchat_accounts_url: str = _url("https://accounts.snapchat.com", "Snapchat's OAuth endpoints")
    snapchat_ads_url: str = _url("https://adsapi.snapchat.com", "the Snapchat Marketing API")
    tiktok_url: str = _url("https://business-api.tiktok.com", "the TikTok Business API")

    facebook_oauth_version: str = Field("v19.0", description="Graph API version of the code exchange")
    facebook_api_version: str = Field("v21.0", description="Graph API version of the look-ups")
    google_ads_version: str = Field("v20", description="Google Ads API version")
    linkedin_version: str = Field("202607", description="LinkedIn-Version header of the Marketing API")
    microsoft_tenant: str = Field("common", description="Microsoft identity platform tenant of the code exchange")

    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of every call to a provider")
    max_connections: int = Field(50, ge=1, description="Connections to providers open at once (shared pool)")
    max_keepalive_connections: int = Field(10, ge=0, description="Idle connections kept in the pool")
    concurrency: int = Field(8, ge=1, description="Parallel calls of one look-up (Google Ads customer names, ...)")
    max_pages: int = Field(100, ge=1, description="Pages a look-up follows at most")

    def credentials(self, provider: str) -> Credentials:
        secret: SecretStr = getattr(self, f"{provider}_client_secret")
        return Credentials(
            client_id=str(getattr(self, f"{provider}_client_id")),
            client_secret=secret.get_secret_value(),
            redirect_uri=str(getattr(self, f"{provider}_redirect_uri")),
        )
