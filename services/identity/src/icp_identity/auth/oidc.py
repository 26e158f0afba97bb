"""OpenID Connect relying party, on Authlib: discovery, the authorization URL (state, nonce, PKCE
S256), the code exchange and ID token validation against the provider's JWKS.

One `OidcClient` per configured provider caches its discovery document and JWKS (lazily, on
first use); an ID token signed with a key id not in the cached JWKS refetches it once (key
rotation). Every failure is a DomainError with a reason a person can read: the provider being
down or answering nonsense is 502, a token that does not validate 401."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from icp_common.errors import Unauthenticated, UpstreamError

from ..settings import OidcProvider

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
METADATA_TTL = 3600.0  # discovery document and JWKS are refetched at most hourly (and on unknown kid)
LEEWAY_SECONDS = 60  # clock skew allowed on exp/iat


class ProviderUnavailable(UpstreamError):
    """The provider could not be reached or answered something unusable (502)."""


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: list[str]
    token_auth_methods: list[str]
    userinfo_endpoint: str | None


@dataclass(frozen=True)
class IdClaims:
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    picture: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class OidcClient:
    def __init__(self, provider: OidcProvider, redirect_uri: str) -> None:
        self.provider = provider
        self.redirect_uri = redirect_uri
        self._metadata: tuple[float, Metadata] | None = None
        self._jwks: tuple[float, KeySet] | None = None

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("OIDC provider %s: %s unreachable or not JSON: %s", self.provider.name, what, exc)
            raise ProviderUnavailable(f"The sign-in provider is unavailable ({what} could not be read)") from exc
        if not isinstance(data, dict):
            log.warning("OIDC provider %s: %s answered %s", self.provider.name, what, response.status_code)
            raise ProviderUnavailable(f"The sign-in provider is unavailable ({what} could not be read)")
        return data

    async def metadata(self) -> Metadata:
        """The discovery document (cached); its issuer must be the configured one (OIDC Discovery 4.3)."""
        if self._metadata is not None and time.monotonic() - self._metadata[0] < METADATA_TTL:
            return self._metadata[1]
        url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        data = await self._get_json(url, "discovery document")
        endpoints = [_text(data.get(k)) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
        if data.get("issuer") != self.provider.issuer or not all(endpoints):
            log.warning(
                "OIDC provider %s: discovery issuer %r or endpoints missing", self.provider.name, data.get("issuer")
            )
            raise ProviderUnavailable("The sign-in provider's discovery document does not match its configuration")
        algorithms = [a for a in data.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"]
        methods = data.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        authorization, token, jwks = (str(e) for e in endpoints)
        userinfo = _text(data.get("userinfo_endpoint"))
        metadata = Metadata(self.provider.issuer, authorization, token, jwks, algorithms, list(methods), userinfo)
        self._metadata = (time.monotonic(), metadata)
        return metadata

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        metadata = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        return str(add_params_to_uri(metadata.authorization_endpoint, list(params.items())))

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The token response for an authorization code (client_secret_basic unless the provider
        only takes client_secret_post; a public client sends its client_id only)."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        secret = self.provider.client_secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if not secret:
            form["client_id"] = self.provider.client_id
        elif "client_secret_basic" in metadata.token_auth_methods:
            # RFC 6749 2.3.1: id and secret form-encoded, then Basic.
            pair = f"{quote(self.provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.provider.client_id, "client_secret": secret}
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(metadata.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("OIDC provider %s: token endpoint unreachable: %s", self.provider.name, exc)
            raise ProviderUnavailable("The sign-in provider is unavailable (token endpoint unreachable)") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if 400 <= response.status_code < 500:  # invalid_grant: a used, expired or foreign code
            log.info("OIDC provider %s refused the code (%s)", self.provider.name, response.status_code)
            raise Unauthenticated("The sign-in provider refused the authorization code")
        if response.status_code != 200 or not isinstance(data, dict):
            log.warning("OIDC provider %s: token endpoint answered %s", self.provider.name, response.status_code)
            raise ProviderUnavailable("The sign-in provider is unavailable (token endpoint failed)")
        if not _text(data.get("id_token")):
            raise Unauthenticated("The sign-in provider returned no ID token")
        return data

    async def _key_set(self, *, refresh: bool) -> KeySet:
        if not refresh and self._jwks is not None and time.monotonic() - self._jwks[0] < METADATA_TTL:
            return self._jwks[1]
        data = await self._get_json((await self.metadata()).jwks_uri, "key set")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderUnavailable("The sign-in provider's key set is invalid") from exc
        self._jwks = (time.monotonic(), keys)
        return keys

    async def validate_id_token(self, token: dict[str, Any], nonce: str) -> IdClaims:
        """Signature (JWKS; refetched once on an unknown key id), iss, aud, exp/iat with a small
        skew, nonce and at_hash (Authlib's CodeIDToken rules)."""
        metadata = await self.metadata()
        registry = JWSRegistry(algorithms=metadata.algorithms, strict_check_header=False)
        invalid = Unauthenticated("The sign-in provider's ID token is invalid")
        try:
            try:
                decoded = jwt.decode(token["id_token"], await self._key_set(refresh=False), registry=registry)
            except (InvalidKeyIdError, BadSignatureError):
                # A key id we do not know (or no key id and no cached key fits): the provider may
                # have rotated its keys since we cached them; refetch once.
                log.info("OIDC provider %s: unknown signing key, refetching its key set", self.provider.name)
                decoded = jwt.decode(token["id_token"], await self._key_set(refresh=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": [metadata.issuer]},
                    "aud": {"essential": True, "values": [self.provider.client_id]},
                },
                {"nonce": nonce, "client_id": self.provider.client_id, "access_token": token.get("access_token")},
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            log.info("OIDC provider %s: ID token refused: %r", self.provider.name, exc)
            raise invalid from exc
        subject = _text(claims.get("sub"))
        if subject is None:
            raise invalid
        return IdClaims(
            subject=subject,
            email=_text(claims.get("email")),
            email_verified=claims.get("email_verified") is True,
            name=_text(claims.get("name")),
            picture=_text(claims.get("picture")),
        )

    async def complete_from_userinfo(self, claims: IdClaims, access_token: str | None) -> IdClaims:
        """Providers that keep the ID token small (no e-mail in it) answer at the userinfo
        endpoint; its `sub` must be the ID token's (OIDC Core 5.3.2)."""
        metadata = await self.metadata()
        if claims.email is not None or not metadata.userinfo_endpoint or not access_token:
            return claims
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.get(
                    metadata.userinfo_endpoint,
                    headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                )
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable("The sign-in provider is unavailable (userinfo could not be read)") from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable("The sign-in provider is unavailable (userinfo could not be read)")
        if data.get("sub") != claims.subject:
            raise Unauthenticated("The sign-in provider's user info is for another user")
        return IdClaims(
            subject=claims.subject,
            email=_text(data.get("email")),
            email_verified=data.get("email_verified") is True,
            name=claims.name or _text(data.get("name")),
            picture=claims.picture or _text(data.get("picture")),
        )


class OidcClients:
    """The configured providers' clients, by name (one per app: the caches live here)."""

    def __init__(self, providers: list[OidcProvider], redirect_uri_of: Any) -> None:
        self.by_name = {p.name: OidcClient(p, redirect_uri_of(p.name)) for p in providers}

    def get(self, name: str) -> OidcClient | None:
        return self.by_name.get(name)
