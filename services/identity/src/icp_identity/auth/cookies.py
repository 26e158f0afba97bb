"""The cookies the identity service sets: the session cookie and the OAuth state nonce."""

from __future__ import annotations

from starlette.responses import Response

from ..settings import Settings

SESSION_COOKIE = "session_token"
OAUTH_STATE_COOKIE = "interloper_oauth_state"
OAUTH_STATE_PATH = "/api/auth/google"  # sent to /api/auth/google/callback only
OAUTH_STATE_MAX_AGE = 600
OIDC_STATE_COOKIE = "interloper_oidc_state"
OIDC_STATE_PATH = "/api/auth/oidc"  # sent to /api/auth/oidc/<provider>/callback only


def set_session(response: Response, settings: Settings, token: str) -> None:
    """`session_token=<token>; HttpOnly; Max-Age=<days*86400>; Path=/; SameSite=lax[; Secure]`."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.auth.session_expiry_days * 86400,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
    )


def clear_session(response: Response) -> None:
    """`session_token=""; expires=<now>; Max-Age=0; Path=/; SameSite=lax` (as the reference)."""
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax")


def set_oauth_state(response: Response, settings: Settings, nonce: str) -> None:
    response.set_cookie(
        OAUTH_STATE_COOKIE,
        nonce,
        max_age=OAUTH_STATE_MAX_AGE,
        path=OAUTH_STATE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
    )


def clear_oauth_state(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        OAUTH_STATE_COOKIE, path=OAUTH_STATE_PATH, httponly=True, samesite="lax", secure=settings.auth.cookie_secure
    )


def set_oidc_state(response: Response, settings: Settings, value: str) -> None:
    """The signed OpenID Connect sign-in state (state, nonce, PKCE verifier, post-login path)."""
    response.set_cookie(
        OIDC_STATE_COOKIE,
        value,
        max_age=OAUTH_STATE_MAX_AGE,
        path=OIDC_STATE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
    )


def clear_oidc_state(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        OIDC_STATE_COOKIE, path=OIDC_STATE_PATH, httponly=True, samesite="lax", secure=settings.auth.cookie_secure
    )
