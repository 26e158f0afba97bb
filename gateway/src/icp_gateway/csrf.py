"""Refuse cross-site state-changing requests that carry the session cookie.

SameSite=lax already keeps the cookie off most cross-site POSTs; this closes the rest
(same-site subdomains, old browsers) by checking Sec-Fetch-Site and Origin."""

from __future__ import annotations

from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_cross_site_write(
    method: str,
    has_cookie: bool,
    headers: dict[str, str],
    request_origin: str,
    allowed: frozenset[str],
) -> bool:
    if method in SAFE_METHODS or not has_cookie:
        return False
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if origin and origin != "null":
        origin = origin.lower().rstrip("/")
        return origin != request_origin and origin not in allowed
    if origin == "null":
        return True
    # No Origin header: trust Sec-Fetch-Site when the browser sent it; scripts send neither.
    return fetch_site == "cross-site"
