"""`/api/external/*` (spec 8 + the web UI contract's additions): viewer role, body = connection data.

A `client_secret` that is the reference to the platform's OAuth app (what the code exchange
answers, `oauth/secret_ref.py`) is replaced by the secret for the provider the route calls only; the
secret goes to that provider and never into an answer."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter

from icp_common.caller import ViewerCaller

from ..oauth.http import HttpDep, OAuthSettingsDep
from ..oauth.secret_ref import resolve_secret
from ..oauth.settings import OAuthSettings
from . import service
from .schemas import (
    AmazonAdsConnection,
    AmazonProfile,
    FacebookAdAccount,
    FacebookAdsConnection,
    GoogleAdsConnection,
    GoogleAdsCustomer,
    GraphTokenConnection,
    Named,
    RefreshTokenConnection,
    TiktokAdsConnection,
    TiktokAdvertiser,
)

router = APIRouter(prefix="/api/external", tags=["external"])

App = TypeVar("App", AmazonAdsConnection, GoogleAdsConnection, RefreshTokenConnection)


def _app(body: App, provider: str, cfg: OAuthSettings) -> App:
    return body.model_copy(update={"client_secret": resolve_secret(body.client_secret, provider, cfg)})


@router.post("/amazon-ads/profiles", response_model=list[AmazonProfile])
async def amazon_ads_profiles(
    _: ViewerCaller, body: AmazonAdsConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[AmazonProfile]:
    return await service.amazon_ads_profiles(http, cfg, _app(body, "amazon", cfg))


@router.post("/facebook-ads/accounts", response_model=list[FacebookAdAccount])
async def facebook_ads_accounts(
    _: ViewerCaller, body: FacebookAdsConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[FacebookAdAccount]:
    return await service.facebook_ads_accounts(http, cfg, body)


@router.post("/google-ads/customers", response_model=list[GoogleAdsCustomer])
async def google_ads_customers(
    _: ViewerCaller, body: GoogleAdsConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[GoogleAdsCustomer]:
    return await service.google_ads_customers(http, cfg, _app(body, "google", cfg))


@router.post("/pinterest-ads/accounts", response_model=list[Named])
async def pinterest_ads_accounts(
    _: ViewerCaller, body: RefreshTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.pinterest_ads_accounts(http, cfg, _app(body, "pinterest", cfg))


@router.post("/snapchat-ads/ad-accounts", response_model=list[Named])
async def snapchat_ads_accounts(
    _: ViewerCaller, body: RefreshTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.snapchat_ads_accounts(http, cfg, _app(body, "snapchat", cfg))


@router.post("/facebook-insights/pages", response_model=list[Named])
async def facebook_insights_pages(
    _: ViewerCaller, body: GraphTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.facebook_insights_pages(http, cfg, body)


@router.post("/instagram-insights/accounts", response_model=list[Named])
async def instagram_insights_accounts(
    _: ViewerCaller, body: GraphTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.instagram_insights_accounts(http, cfg, body)


@router.post("/linkedin-ads/accounts", response_model=list[Named])
async def linkedin_ads_accounts(
    _: ViewerCaller, body: RefreshTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.linkedin_ads_accounts(http, cfg, _app(body, "linkedin", cfg))


@router.post("/linkedin-organic/organizations", response_model=list[Named])
async def linkedin_organizations(
    _: ViewerCaller, body: RefreshTokenConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[Named]:
    return await service.linkedin_organizations(http, cfg, _app(body, "linkedin", cfg))


@router.post("/tiktok-ads/advertisers", response_model=list[TiktokAdvertiser])
async def tiktok_ads_advertisers(
    _: ViewerCaller, body: TiktokAdsConnection, http: HttpDep, cfg: OAuthSettingsDep
) -> list[TiktokAdvertiser]:
    return await service.tiktok_ads_advertisers(http, cfg, body)
