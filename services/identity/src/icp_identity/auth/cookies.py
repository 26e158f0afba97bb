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


def _set_state(response: Response, settings: Settings, name: str, path: str, value: str) -> None:
    """A short-lived sign-in state cookie, sent back only to its callback path."""
    response.set_cookie(
        name,
        value,
        max_age=OAUTH_STATE_MAX_AGE,
        path=path,
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
    )


def _clear_state(response: Response, settings: Settings, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=settings.auth.cookie_secure)


def set_oauth_state(response: Response, settings: Settings, nonce: str) -> None:
    _set_state(response, settings, OAUTH_STATE_COOKIE, OAUTH_STATE_PATH, nonce)


def clear_oauth_state(response: Response, settings: Settings) -> None:
    _clear_state(response, settings, OAUTH_STATE_COOKIE, OAUTH_STATE_PATH)


def set_oidc_state(response: Response, settings: Settings, value: str) -> None:
    """The signed OpenID Connect sign-in state (state, nonce, PKCE verifier, post-login path)."""
    _set_state(response, settings, OIDC_STATE_COOKIE, OIDC_STATE_PATH, value)


def clear_oidc_state(response: Response, settings: Settings) -> None:
    _clear_state(response, settings, OIDC_STATE_COOKIE, OIDC_STATE_PATH)
