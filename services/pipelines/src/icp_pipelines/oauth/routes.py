"""`/api/oauth` (spec 2.14): the configured providers and the code exchange, without authentication
as in the reference (INTERLOPER_OAUTH_EXCHANGE_REQUIRES_SESSION=true requires a signed-in caller
for the exchange). This router's lifespan owns the outbound HTTP client of `/api/external` too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from icp_common.identity import require_authenticated
from icp_common.web import get_identity

from ..deps import CatalogDep
from . import service
from .http import HttpDep, OAuthSettingsDep, lifespan
from .schemas import CodeExchange, ProviderInfo

router = APIRouter(prefix="/api/oauth", tags=["oauth"], lifespan=lifespan)


async def exchange_caller(request: Request, settings: OAuthSettingsDep) -> None:
    if settings.exchange_requires_session:
        require_authenticated(await get_identity(request))


@router.get("/providers", response_model=list[ProviderInfo])
async def providers(settings: OAuthSettingsDep, catalog: CatalogDep) -> list[ProviderInfo]:
    """Providers whose `{PROVIDER}_CLIENT_ID/_CLIENT_SECRET/_REDIRECT_URI` are all set; `[]` when none."""
    return service.list_providers(settings, catalog)


@router.post("/{provider}", dependencies=[Depends(exchange_caller)])
async def exchange(provider: str, body: CodeExchange, settings: OAuthSettingsDep, http: HttpDep) -> dict[str, Any]:
    """The provider's token JSON plus `client_id` and `client_secret`."""
    return await service.exchange_code(http, settings, provider, body.code)
