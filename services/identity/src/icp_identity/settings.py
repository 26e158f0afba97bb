"""Settings of the identity service."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from icp_common.settings import ServiceSettings


class OidcProvider(BaseModel):
    """One OpenID Connect provider of INTERLOPER_AUTH_OIDC_PROVIDERS (a JSON list of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="URL name: /api/auth/oidc/<name>/login")
    issuer: str = Field(
        pattern=r"^https?://[^\s?#]+$",
        description="Issuer URL; discovery reads <issuer>/.well-known/openid-configuration",
    )
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(SecretStr(""), description="Empty for a public client (PKCE only)")
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    allowed_domains: list[str] = Field(default_factory=list, description="E-mail domains allowed; empty = any")
    require_verified_email: bool = Field(True, description="Refuse an ID token without email_verified=true")
    display_name: str | None = Field(None, max_length=100, description="Button label; defaults to the name")

    @field_validator("scopes")
    @classmethod
    def _needs_openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes or any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in scopes):
            raise ValueError("scopes must include 'openid' and contain no spaces or quotes")
        return scopes

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        cleaned = [d.strip().lower().lstrip("@") for d in domains]
        if any(not re.fullmatch(r"[a-z0-9.-]+\.[a-z0-9-]+", d) for d in cleaned):
            raise ValueError("allowed_domains must be domain names such as example.com")
        return cleaned

    @property
    def label(self) -> str:
        return self.display_name or self.name


class AuthSettings(BaseSettings):
    """Sign-in and sessions (names as in the reference: INTERLOPER_AUTH_*)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_AUTH_", extra="ignore")

    google_client_id: str = Field("", description="Google OAuth client id for sign-in")
    google_client_secret: SecretStr = Field(SecretStr(""), description="Google OAuth client secret")
    google_redirect_uri: str = Field("", description="Redirect URI registered with Google")
    google_auth_url: str = Field("https://accounts.google.com/o/oauth2/v2/auth", description="Google authorize URL")
    google_token_url: str = Field("https://oauth2.googleapis.com/token", description="Google token URL")
    google_userinfo_url: str = Field("https://www.googleapis.com/oauth2/v2/userinfo", description="Google userinfo URL")
    cookie_secure: bool = Field(True, description="Mark the session cookie Secure")
    session_expiry_days: int = Field(30, description="Session lifetime (cookie and server side)")
    invitation_expiry_days: int = Field(7, description="Invitation lifetime")
    invitations_per_organisation: int = Field(
        20, description="Invitation e-mails (invites and resends) one organisation may send per window"
    )
    invitations_per_address: int = Field(
        5, description="Invitation e-mails one address may receive per window, from all organisations"
    )
    invitation_window_seconds: int = Field(3600, description="Window of the two invitation limits")
    dev_login: bool = Field(False, description="Enable GET /api/auth/dev-login (never in production)")
    link_verified_emails: bool = Field(
        False,
        description=(
            "Let a first Google or OpenID Connect sign-in join an existing profile with the same e-mail "
            "(made by dev login, the CLI or another provider) when the new provider verified the e-mail and "
            "every sign-in already linked to the profile did too; otherwise it is refused"
        ),
    )
    oidc_providers: list[OidcProvider] = Field(
        default_factory=list, description="OpenID Connect providers for sign-in (JSON list; README: OpenID Connect)"
    )
    operator_rpcs: bool = Field(
        False, description="Serve operator-only gRPC calls (CreateSession mints a session for any e-mail)"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra origins allowed to send cookie-carrying writes (CSRF check)"
    )

    @field_validator("oidc_providers")
    @classmethod
    def _unique_names(cls, providers: list[OidcProvider]) -> list[OidcProvider]:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        return providers


class Settings(ServiceSettings):
    http_port: int = 8101
    grpc_port: int = 9101
    audit_retention_days: int = Field(
        365, ge=1, description="Audit log entries older than this many days are deleted (the only deletion)"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
