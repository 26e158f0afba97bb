"""The one outbound HTTP client of the OAuth exchange and the external look-ups.

Created when the app starts (the lifespan of the `/api/oauth` router, merged into the app's) and
closed when it stops: a bounded pool (`INTERLOPER_OAUTH_MAX_CONNECTIONS`), the provider timeout
(`INTERLOPER_OAUTH_TIMEOUT_SECONDS`, 30 s by default) on connect/read/write/pool, no redirects, and
no cookie jar (one caller's provider cookies must never reach another caller's request). Proxy
variables of the environment (HTTPS_PROXY, NO_PROXY) apply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from icp_common.errors import DomainError

from .settings import OAuthSettings

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

STATE_KEY = "provider_http"


class ProviderError(DomainError):
    """A provider call failed; `status_code` is the status the caller gets (spec 2.14 and 8)."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code


def build_client(settings: OAuthSettings) -> httpx.AsyncClient:
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
        ),
        follow_redirects=False,
        cookies=no_cookies,
        headers={"User-Agent": "interloper-control-plane"},
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    client = build_client(settings.oauth)
    setattr(app.state, STATE_KEY, client)
    try:
        yield
    finally:
        delattr(app.state, STATE_KEY)
        await client.aclose()


async def get_http(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, STATE_KEY, None)
    if client is None:  # the app was served without running its lifespan
        raise RuntimeError("the provider HTTP client is not started (run the app's lifespan)")
    return client


async def get_oauth_settings(request: Request) -> OAuthSettings:
    settings: Settings = request.app.state.settings
    return settings.oauth


HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
OAuthSettingsDep = Annotated[OAuthSettings, Depends(get_oauth_settings)]


def join(base: str, path: str) -> str:
    """`base` (which may carry a path prefix) + `path` (starting with a slash)."""
    return base.rstrip("/") + path


def redact(url: httpx.URL) -> str:
    """A URL for the log: without its query (which can carry tokens)."""
    return str(url.copy_with(query=None))
