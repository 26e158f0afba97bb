"""The signed identity assertion the gateway forwards to services, and role checks.

The gateway is the only component that reads the session cookie. It asks identity who the
caller is and forwards the answer as a short-lived HMAC-signed header; services verify it
and never see cookies. Anything arriving from outside under this header name is stripped
by the gateway.

Wire format: ``v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256)>``. The payload names its
audience (`aud`, the one service it is for): an assertion captured by one service cannot be
replayed to another.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .errors import Forbidden, InvalidInput, NotFound, Unauthenticated

IDENTITY_HEADER = "x-interloper-identity"
REQUEST_ID_HEADER = "x-request-id"
INTERNAL_TOKEN_HEADER = "x-interloper-internal"

AuthState = Literal["anonymous", "invalid", "ok", "system"]
ROLE_RANK: dict[str, int] = {"viewer": 1, "editor": 2, "admin": 3}
ROLES = tuple(ROLE_RANK)
_VERSION = "v1"
_DEFAULT_SKEW_SECONDS = 5
# Short: an assertion is minted per request/call (the agent re-signs for every tool call).
DEFAULT_TTL_SECONDS = 30
# Assertions a signer remembers having verified (the gateway mints the same one for a caller's
# requests within a second): bounded, emptied when full.
VERIFIED_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as established by the identity service for this one request."""

    state: AuthState = "anonymous"
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    avatar_url: str | None = None
    session_id: str | None = None
    org_id: str | None = None
    org_exists: bool = False
    role: str | None = None  # role in the active organisation; None when not a member
    last_organisation_id: str | None = None
    # Set when an API token (`Authorization: Bearer ilp_...`) authenticated the request, not a
    # session: services refuse token callers where a leaked token must not mint more access.
    # "" with state "invalid": an API token was presented and resolves to nothing.
    token_id: str | None = None
    # A service-account token: `user_id` is the token's own id (it belongs to the organisation).
    service_account: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Identity:
        return cls()

    @classmethod
    def system(cls, org_id: str | None = None) -> Identity:
        """Acting as the system (NATS handlers, schedulers) inside one organisation."""
        return cls(state="system", org_id=org_id, org_exists=org_id is not None, role="admin")

    @property
    def is_token(self) -> bool:
        """Authenticated by an API token rather than a session."""
        return self.token_id is not None

    @property
    def is_authenticated(self) -> bool:
        return self.state in ("ok", "system")

    def to_dict(self) -> dict[str, Any]:
        # As dataclasses.asdict, without its recursive copy of every field (the gateway signs one
        # assertion per request): only `extra` can hold mutable values.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["extra"] = copy.deepcopy(self.extra) if self.extra else {}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


_FIELDS = tuple(f.name for f in fields(Identity))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """One shared secret, one derived key per purpose (assertions, internal calls)."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class IdentitySigner:
    """Signs and verifies identity assertions with a key derived from the internal secret.

    `audience` is the service this signer verifies for: its `verify` refuses an assertion minted
    for any other service (or for none). Every service process sets it; a signer without one
    (the gateway's, which only signs) checks no audience."""

    def __init__(
        self,
        secret: bytes,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        skew_seconds: int = _DEFAULT_SKEW_SECONDS,
        *,
        audience: str | None = None,
    ):
        if not secret:
            raise ValueError("an identity signer needs a non-empty secret")
        self._key = derive_key(secret, "identity-assertion-v1")
        self.ttl_seconds = ttl_seconds
        self.skew_seconds = skew_seconds
        self.audience = audience
        # token -> (identity, iat, exp) of an assertion whose signature, payload and audience
        # passed; its time window is still checked on every use.
        self._verified: dict[str, tuple[Identity, int, int]] = {}
        # (id(identity), audience) -> (identity, iat, token) of the assertions minted last.
        self._minted: dict[tuple[int, str], tuple[Identity, int, str]] = {}

    def sign(self, identity: Identity, *, audience: str | None = None, now: float | None = None) -> str:
        """An assertion for `audience` (default: this signer's own audience, e.g. in tests)."""
        target = audience or self.audience
        if not target:
            raise ValueError("an identity assertion needs an audience (the service it is for)")
        issued = int(now if now is not None else time.time())
        # The gateway's session cache hands out the same Identity object for a caller's requests:
        # within one second its assertion for one audience is the same token, minted once.
        key = (id(identity), target)
        minted = self._minted.get(key)
        if minted is not None and minted[0] is identity and minted[1] == issued:
            return minted[2]
        payload = {"id": identity.to_dict(), "aud": target, "iat": issued, "exp": issued + self.ttl_seconds}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{_VERSION}.{body}"
        token = f"{signed}.{_b64(self._mac(signed))}"
        if not identity.extra:  # `extra` is the one mutable field: never cached
            if len(self._minted) >= VERIFIED_CACHE_SIZE:
                self._minted.clear()
            self._minted[key] = (identity, issued, token)  # holds `identity`: its id stays its own
        return token

    def verify(self, token: str | None, *, now: float | None = None) -> Identity:
        """Return the identity in `token`; a missing header means an anonymous caller.

        Raises Unauthenticated for a tampered, malformed, expired or not-yet-valid assertion, and
        for one minted for another service.
        """
        if not token:
            return Identity.anonymous()
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify_signed(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = verified
        identity, issued, expires = verified
        current = now if now is not None else time.time()
        if current > expires + self.skew_seconds or current < issued - self.skew_seconds:
            raise Unauthenticated("Expired identity assertion")
        return identity

    def _verify_signed(self, token: str) -> tuple[Identity, int, int]:
        """Signature, payload and audience of `token` (not its time window)."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise Unauthenticated("Invalid identity assertion")
        try:
            signature = _unb64(parts[2])
        except ValueError as exc:
            raise Unauthenticated("Invalid identity assertion") from exc
        if not hmac.compare_digest(signature, self._mac(f"{parts[0]}.{parts[1]}")):
            raise Unauthenticated("Invalid identity assertion")
        try:
            payload = json.loads(_unb64(parts[1]))
            issued, expires, data = int(payload["iat"]), int(payload["exp"]), payload["id"]
            audience = payload.get("aud")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Unauthenticated("Invalid identity assertion") from exc
        if self.audience is not None and audience != self.audience:
            raise Unauthenticated("Invalid identity assertion")
        return Identity.from_dict(data), issued, expires

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).digest()


def require_authenticated(identity: Identity) -> Identity:
    """401 unless the caller has a valid session (no organisation needed)."""
    if identity.state == "anonymous":
        raise Unauthenticated("Not authenticated")
    if identity.state == "invalid":
        raise Unauthenticated("Invalid or expired token" if identity.is_token else "Invalid or expired session")
    return identity


def require_role(identity: Identity, minimum: str) -> Identity:
    """The role check of every org-scoped route, in the public contract's precedence:
    401 -> 400 no organisation -> 404 organisation gone -> 403 not a member -> 403 role."""
    require_authenticated(identity)
    if identity.state == "system":
        return identity
    if not identity.org_id:
        raise InvalidInput("No organisation selected")
    if not identity.org_exists:
        raise NotFound("Organisation not found")
    if identity.role is None:
        raise Forbidden("Not a member of this organisation")
    if ROLE_RANK.get(identity.role, 0) < ROLE_RANK[minimum]:
        raise Forbidden(f"Requires {minimum} role or higher")
    return identity
