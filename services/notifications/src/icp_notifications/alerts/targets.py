"""Webhook targets: URL validation (no SSRF through alerts) and the signed request.

A URL is checked when the rules are saved (scheme, literal addresses, `localhost`) and again at
every delivery: the host is resolved then, every address it resolves to must be global, and the
request goes to the checked address itself (Host header and TLS SNI / certificate check keep the
name), so a name that later resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding) is refused.
Redirects are not followed and no proxy from the environment is used."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import httpx

SIGNATURE_HEADER = "X-Interloper-Signature"
TIMESTAMP_HEADER = "X-Interloper-Timestamp"
EVENT_HEADER = "X-Interloper-Event-Id"
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL may not be called (scheme, or a non-global address)."""


class WebhookFailed(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_public(address: IPAddress) -> bool:
    """Global unicast only: no loopback, private, link-local (cloud metadata), CGNAT, multicast,
    reserved or unspecified addresses; an IPv4-mapped IPv6 address is judged as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return address.is_global and not address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """The parsed URL if it may be configured, else TargetRefused (static checks only)."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise TargetRefused("URL contains spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise TargetRefused("URL has no host")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise TargetRefused(f"invalid port: {exc}") from exc
    if allow_private:
        return parts
    address = _literal(host)
    if address is not None and not is_public(address):
        raise TargetRefused(f"address {address} is not public (loopback, private, link-local or reserved)")
    if address is None and (host == "localhost" or host.endswith((".localhost", ".local", ".internal"))):
        raise TargetRefused(f"host {host} is not public")
    return parts


async def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """An address of `host` to connect to; TargetRefused if any address it resolves to is not
    public (one bad record is enough: the resolver's order is not ours to choose)."""
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise WebhookFailed(f"cannot resolve {host}: {exc}", permanent=False) from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise WebhookFailed(f"{host} has no address", permanent=False)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise TargetRefused(f"{host} resolves to {address}, which is not public")
    return str(addresses[0])


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>") (the timestamp is signed too,
    so a receiver can refuse old replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    body: dict[str, Any]
    event_id: str
    secret: str | None = None


class WebhookSender:
    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, request: WebhookRequest) -> None:
        """POST the body; WebhookFailed (permanent or not) or TargetRefused on failure."""
        parts = check_url(request.url, allow_private=self.allow_private)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await resolve(host, port, allow_private=self.allow_private)
        netloc_host = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{netloc_host}:{port}", parts.path or "/", parts.query, ""))
        body = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers: dict[str, str] = {
            "Host": parts.netloc.rpartition("@")[2],
            "Content-Type": "application/json",
            "User-Agent": "Interloper-Alerts/1",
            EVENT_HEADER: request.event_id,
        }
        if request.secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(request.secret, timestamp, body)
        extensions: Mapping[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        if parts.username:  # user:password@ in the URL: HTTP basic auth (the URL sent has none)
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        try:
            response = await self._client.post(target, content=body, headers=headers, extensions=dict(extensions))
        except httpx.HTTPError as exc:
            raise WebhookFailed(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        if 200 <= response.status_code < 300:
            return
        status = response.status_code
        # 408/425/429 and 5xx may succeed later; other answers (4xx, redirects) will not.
        transient = status >= 500 or status in (408, 425, 429)
        raise WebhookFailed(f"HTTP {status} from the webhook", permanent=not transient)
