"""`/api/oauth` (spec 2.14): the configured providers (public) and the code exchange, which needs an
editor of an organisation (the reference allowed anyone; issue 15). This router's lifespan owns the
outbound HTTP client of `/api/external` too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from icp_common.caller import EditorCaller

from ..deps import AuditDep, CatalogDep
from . import service
from .http import HttpDep, OAuthSettingsDep, lifespan
from .schemas import CodeExchange, ProviderInfo

router = APIRouter(prefix="/api/oauth", tags=["oauth"], lifespan=lifespan)


@router.get("/providers", response_model=list[ProviderInfo])
async def providers(settings: OAuthSettingsDep, catalog: CatalogDep) -> list[ProviderInfo]:
    """Providers whose `{PROVIDER}_CLIENT_ID/_CLIENT_SECRET/_REDIRECT_URI` are all set; `[]` when none."""
    return service.list_providers(settings, catalog)


@router.post("/{provider}")
async def exchange(
    _: EditorCaller, provider: str, body: CodeExchange, settings: OAuthSettingsDep, http: HttpDep, audit: AuditDep
) -> dict[str, Any]:
    """The provider's token JSON plus `client_id` and a reference to the platform's `client_secret`
    (`platform:oauth/<provider>/client_secret`, resolved only server-side). The audit entry names
    the provider only (never the code nor the tokens)."""
    tokens = await service.exchange_code(http, settings, provider, body.code)
    await audit("oauth.exchange", "oauth_provider", provider)
    return tokens
