"""Sign-in, sign-out and the caller's own view; HTTP-agnostic (cookies are set by the routes)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from icp_common.caller import Caller
from icp_common.errors import Forbidden, InvalidInput

from ..errors import NotConfigured
from ..members import service as members_service
from ..organisations import service as organisations_service
from ..organisations.models import Organisation
from ..profiles import service as profiles_service
from ..security import new_nonce, safe_redirect_path
from ..sessions import service as sessions_service
from ..sessions.service import NewSession
from ..settings import Settings
from . import google

CALLBACK_PATH = "/api/auth/google/callback"


@dataclass(frozen=True)
class AuthUser:
    """The caller as `/api/auth/me` shows them."""

    id: str
    email: str
    name: str | None
    avatar_url: str | None
    role: str | None
    organisation: Organisation | None
    last_organisation_id: str | None


@dataclass(frozen=True)
class GoogleStart:
    url: str  # where to send the browser
    nonce: str  # to bind to the browser (short-lived cookie), checked on the callback


@dataclass(frozen=True)
class SignIn:
    session: NewSession
    redirect: str  # same-site path to send the browser to afterwards


def _redirect_uri(settings: Settings) -> str:
    return settings.auth.google_redirect_uri or settings.public_url.rstrip("/") + CALLBACK_PATH


def _require_google(settings: Settings, *, secret: bool) -> None:
    auth = settings.auth
    if not auth.google_client_id or (secret and not auth.google_client_secret.get_secret_value()):
        raise NotConfigured("Google OAuth not configured")


def encode_state(nonce: str, redirect: str) -> str:
    """OAuth `state`: `<nonce>.<same-site path>` (a nonce never contains a dot)."""
    return f"{nonce}.{redirect}"


def decode_state(state: str | None) -> tuple[str, str]:
    nonce, dot, redirect = (state or "").partition(".")
    if not nonce or not dot:
        raise InvalidInput("Invalid OAuth state")
    return nonce, redirect


def start_google(settings: Settings, redirect: str | None) -> GoogleStart:
    """The Google authorization URL; its `state` carries a fresh nonce and the post-login path."""
    _require_google(settings, secret=False)
    nonce = new_nonce()
    state = encode_state(nonce, safe_redirect_path(redirect))
    return GoogleStart(url=google.authorization_url(settings.auth, _redirect_uri(settings), state), nonce=nonce)


async def finish_google(
    session: AsyncSession, settings: Settings, *, code: str, state: str | None, expected_nonce: str | None
) -> SignIn:
    """Check the state against the browser's nonce, exchange the code, upsert the profile and
    open a session without an active organisation."""
    _require_google(settings, secret=True)
    nonce, redirect = decode_state(state)
    if not expected_nonce or not hmac.compare_digest(nonce.encode(), expected_nonce.encode()):
        raise InvalidInput("Invalid OAuth state")
    redirect_uri = _redirect_uri(settings)
    access_token = await google.exchange_code(settings.auth, redirect_uri, code)
    user = await google.fetch_user(settings.auth, access_token)
    profile = await profiles_service.upsert_google(
        session,
        google_id=user.google_id,
        email=user.email,
        name=user.name,
        avatar_url=user.picture,
        link_by_email=settings.auth.link_verified_emails,
    )
    new = await sessions_service.open_session(session, profile.id, settings.auth.session_expiry_days)
    return SignIn(session=new, redirect=safe_redirect_path(redirect))


async def session_for_email(session: AsyncSession, settings: Settings, email: str, name: str | None) -> NewSession:
    """A new session (no active organisation) for the profile with this e-mail, created on first
    use: dev login, the CLI and the internal CreateSession call."""
    email = email.strip()
    if not email:
        raise InvalidInput("email is required")
    profile = await profiles_service.get_or_create_by_email(session, email, (name or "").strip() or None)
    return await sessions_service.open_session(session, profile.id, settings.auth.session_expiry_days)


async def me(reader: AsyncEngine, caller: Caller) -> AuthUser:
    """From the verified assertion (the gateway's Authenticate already read the session, user
    and membership) plus at most one statement for the active organisation, on `reader` (an
    autocommit engine: no BEGIN/COMMIT round trips)."""
    organisation = None
    if caller.org_id is not None and caller.identity.org_exists:
        async with reader.connect() as conn:
            organisation = await organisations_service.read(conn, caller.org_id)
    return AuthUser(
        id=str(caller.user),
        email=caller.email or "",
        name=caller.name,
        avatar_url=caller.identity.avatar_url,
        role=caller.identity.role if organisation is not None else None,
        organisation=organisation,
        last_organisation_id=caller.identity.last_organisation_id,
    )


async def switch_organisation(session: AsyncSession, caller: Caller, org_id: uuid.UUID) -> None:
    caller.refuse_token()  # a token is bound to its organisation; it has no session to switch
    if await members_service.role_of(session, org_id, caller.user) is None:
        raise Forbidden("Not a member of this organisation")
    await organisations_service.enter(session, caller, org_id)


async def logout(session: AsyncSession, caller: Caller) -> None:
    """Revoke every session of the user (all devices); not with an API token (a leaked one must
    not sign its owner out everywhere)."""
    caller.refuse_token()
    await sessions_service.revoke_all(session, caller.user)
