"""OpenID Connect sign-in, HTTP-agnostic: start (authorization URL + the browser-bound state) and
finish (state, code exchange, ID token, e-mail rules, then the same profile/session as Google).

The state, nonce, PKCE verifier, provider and post-login path travel in a short-lived HttpOnly
cookie signed with a key derived from the internal secret (nothing stored server side before
sign-in); the callback's `state` must equal the cookie's. All network work happens before the
one database transaction, and a refusal raised inside it rolls everything back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from icp_common.db import unit_of_work
from icp_common.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated

from ..audit import recorder
from ..profiles import service as profiles_service
from ..security import safe_redirect_path
from ..sessions import service as sessions_service
from ..settings import Settings
from .oidc import IdClaims, OidcClient, OidcClients
from .service import SignIn

CALLBACK_PATH = "/api/auth/oidc/{name}/callback"
STATE_MAX_AGE = 600
_STATE_ALG = "HS256"


def redirect_uri(settings: Settings, name: str) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH.format(name=name)


def clients_for(settings: Settings) -> OidcClients:
    return OidcClients(settings.auth.oidc_providers, lambda name: redirect_uri(settings, name))


def client_of(clients: OidcClients, name: str) -> OidcClient:
    client = clients.get(name)
    if client is None:
        raise NotFound("Unknown sign-in provider")
    return client


def _state_key(settings: Settings) -> OctKey:
    # A key of its own: a state cookie is never valid as anything else signed with the secret.
    derived = hmac.new(settings.require_secret(), b"interloper oidc state cookie", hashlib.sha256).digest()
    return OctKey.import_key(derived)


@dataclass(frozen=True)
class OidcStart:
    url: str
    cookie: str  # the signed state, for the short-lived cookie


async def start(settings: Settings, client: OidcClient, redirect: str | None) -> OidcStart:
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    url = await client.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
    claims = {
        "p": client.provider.name,
        "s": state,
        "n": nonce,
        "v": verifier,
        "r": safe_redirect_path(redirect),
        "exp": int(time.time()) + STATE_MAX_AGE,
    }
    return OidcStart(url=url, cookie=jwt.encode({"alg": _STATE_ALG}, claims, _state_key(settings)))


def _read_state(settings: Settings, cookie: str | None, provider: str, state: str | None) -> dict[str, str]:
    bad = InvalidInput("Sign-in state is missing, expired or does not match; please sign in again")
    if not cookie or not state:
        raise bad
    try:
        token = jwt.decode(cookie, _state_key(settings), algorithms=[_STATE_ALG])
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise bad from exc
    claims = token.claims
    fields = {k: claims.get(k) for k in ("p", "s", "n", "v", "r")}
    if not all(isinstance(v, str) for v in fields.values()) or fields["p"] != provider:
        raise bad
    if not hmac.compare_digest(str(fields["s"]).encode(), state.encode()):
        raise bad
    return {k: str(v) for k, v in fields.items()}


class SignInRefused(Forbidden):
    """A refusal once the provider named an e-mail address (the audit log's failed sign-in
    names it; it is the provider's claim, not a verified address)."""

    def __init__(self, detail: str, email: str) -> None:
        super().__init__(detail)
        self.email = email


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: OidcClient,
    *,
    cookie: str | None,
    state: str | None,
    code: str | None,
    error: str | None,
    connection: HTTPConnection | None = None,
) -> SignIn:
    provider = client.provider
    bound = _read_state(settings, cookie, provider.name, state)
    if error:
        raise Unauthenticated(f"The sign-in provider refused the sign-in ({error[:100]})")
    if not code:
        raise InvalidInput("The sign-in provider sent no authorization code")
    token = await client.exchange_code(code, bound["v"])
    claims = await client.validate_id_token(token, bound["n"])
    access_token = token.get("access_token")
    claims = await client.complete_from_userinfo(claims, access_token if isinstance(access_token, str) else None)
    if claims.email is None or "@" not in claims.email:
        raise Forbidden("The sign-in provider did not share an e-mail address (is the 'email' scope granted?)")
    if provider.require_verified_email and not claims.email_verified:
        raise SignInRefused("Your e-mail address is not verified by the sign-in provider", claims.email)
    domain = claims.email.rsplit("@", 1)[1].lower()
    if provider.allowed_domains and domain not in provider.allowed_domains:
        raise SignInRefused("Your e-mail domain is not allowed to sign in here", claims.email)
    try:
        return await _sign_in(sessions, settings, client, claims, claims.email, bound["r"], connection)
    except IntegrityError as exc:  # a concurrent first sign-in of the same identity won the race
        raise Conflict("Another sign-in of this account was in progress; please sign in again") from exc


async def _sign_in(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: OidcClient,
    claims: IdClaims,
    email: str,
    redirect: str,
    connection: HTTPConnection | None = None,
) -> SignIn:
    """Link (or create) the profile and open its session, in one transaction (with its audit entry)."""
    provider = client.provider
    async with unit_of_work(sessions) as session:
        profile = await profiles_service.upsert_oidc(
            session,
            issuer=provider.issuer,
            subject=claims.subject,
            email=email,
            email_verified=claims.email_verified,
            name=claims.name,
            avatar_url=claims.picture,
            link_by_email=settings.auth.link_verified_emails,
        )
        new = await sessions_service.open_session(session, profile.id, settings.auth.session_expiry_days)
        if connection is not None:
            await recorder.record_sign_in(session, connection, f"oidc:{provider.name}", user_id=profile.id, email=email)
    return SignIn(session=new, redirect=redirect)
