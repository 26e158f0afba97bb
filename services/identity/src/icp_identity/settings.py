"""Settings of the identity service."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from icp_common.settings import ServiceSettings


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
            "Let a first Google sign-in take over an existing profile that has no Google account yet "
            "(made by dev login or the CLI) when Google verified the same e-mail; otherwise it is refused"
        ),
    )
    operator_rpcs: bool = Field(
        False, description="Serve operator-only gRPC calls (CreateSession mints a session for any e-mail)"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Extra origins allowed to send cookie-carrying writes (CSRF check)"
    )


class Settings(ServiceSettings):
    http_port: int = 8101
    grpc_port: int = 9101
    auth: AuthSettings = Field(default_factory=AuthSettings)
