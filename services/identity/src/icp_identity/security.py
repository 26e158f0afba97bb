"""Tokens and redirects: random secrets, their SHA-256 digests, and same-site redirect paths."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlsplit

SESSION_TOKEN_BYTES = 48  # token_urlsafe(48) = 64 URL-safe characters (spec 3.2)
INVITATION_TOKEN_BYTES = 32  # token_urlsafe(32) (spec 3.4)
API_TOKEN_PREFIX = "ilp_"  # what tells an API token from anything else in `Authorization: Bearer`
API_TOKEN_BYTES = 32  # 256 bits of randomness
MAX_TOKEN_LENGTH = 512  # longer "tokens" are rejected without hashing or a database round trip


def new_session_token() -> str:
    return secrets.token_urlsafe(SESSION_TOKEN_BYTES)


def new_invitation_token() -> str:
    return secrets.token_urlsafe(INVITATION_TOKEN_BYTES)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(API_TOKEN_BYTES)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """SHA-256 hex digest: the only form in which session and invitation tokens are stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def safe_redirect_path(target: str | None) -> str:
    """`target` if it is a path on this site, else `/`.

    Accepts `/x...` only: rejects absolute URLs, scheme-relative `//host`, `/\\host` (browsers
    treat a backslash like a slash), control characters and anything with a scheme or host.
    """
    if not target or not target.startswith("/") or len(target) > 2048:
        return "/"
    if target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
