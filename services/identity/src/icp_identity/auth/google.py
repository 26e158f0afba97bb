"""Google OAuth 2.0 for sign-in: the authorization URL, the code exchange and the user info.

The endpoints come from settings (AuthSettings.google_*_url) so tests and the local stack can
point them at a fake Google server. Provider failures become the spec's 401 details."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from icp_common.errors import Unauthenticated

from ..settings import AuthSettings

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class GoogleUser:
    google_id: str
    email: str
    name: str | None
    picture: str | None


def authorization_url(auth: AuthSettings, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": auth.google_client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid email profile",
            "access_type": "offline",
            "prompt": "consent",
            "state": state,
        }
    )
    separator = "&" if "?" in auth.google_auth_url else "?"
    return f"{auth.google_auth_url}{separator}{query}"


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def exchange_code(auth: AuthSettings, redirect_uri: str, code: str) -> str:
    """The access token for an authorization code."""
    failed = Unauthenticated("Failed to exchange authorization code")
    form = {
        "code": code,
        "client_id": auth.google_client_id,
        "client_secret": auth.google_client_secret.get_secret_value(),
        "redirect_uri": redirect_uri,
        "grant_type": "authorization_code",
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(auth.google_token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("Google token endpoint unreachable: %s", exc)
        raise failed from exc
    if response.status_code != 200:
        log.info("Google token endpoint answered %s", response.status_code)
        raise failed
    data = _json_object(response)
    if data is None:
        raise failed
    token = data.get("access_token")
    if not token or not isinstance(token, str):
        raise Unauthenticated("No access token in response")
    return token


async def fetch_user(auth: AuthSettings, access_token: str) -> GoogleUser:
    failed = Unauthenticated("Failed to fetch user info")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(auth.google_userinfo_url, headers={"Authorization": f"Bearer {access_token}"})
    except httpx.HTTPError as exc:
        log.warning("Google userinfo endpoint unreachable: %s", exc)
        raise failed from exc
    if response.status_code != 200:
        log.info("Google userinfo endpoint answered %s", response.status_code)
        raise failed
    data = _json_object(response)
    if data is None:
        raise failed
    google_id, email = data.get("id"), data.get("email")
    if not google_id or not email or not isinstance(email, str):
        raise Unauthenticated("Incomplete user info from Google")
    # Only an explicit "verified" counts: a missing flag is not a verified address (v2 userinfo
    # says `verified_email`, the OpenID Connect endpoint `email_verified`).
    if data.get("verified_email") is not True and data.get("email_verified") is not True:
        raise Unauthenticated("Google account e-mail is not verified")
    name, picture = data.get("name"), data.get("picture")
    return GoogleUser(
        google_id=str(google_id),
        email=email,
        name=name if isinstance(name, str) else None,
        picture=picture if isinstance(picture, str) else None,
    )
