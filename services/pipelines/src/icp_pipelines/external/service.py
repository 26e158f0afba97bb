"""The account look-ups behind the catalog's `x-fetch` fields.

Spec 8 (the reference's five): Amazon Ads profiles, Facebook Ads accounts (active only), Google Ads
customers, Pinterest Ads accounts, Snapchat Ads ad accounts (active only). The web UI contract's
additions (catalog fields pointing at routes the reference lacks): Facebook Insights pages, Instagram
Insights accounts, LinkedIn Ads accounts, LinkedIn organisations, TikTok Ads advertisers.

Where we do better than the reference: Google Ads customer names and Snapchat organisations are
fetched concurrently (at most INTERLOPER_OAUTH_CONCURRENCY at once) instead of one by one; a Google
Ads customer without a searchable name is still listed (by id); Facebook Ads accounts follow the
Graph cursor past the first 500; every pagination is bounded (INTERLOPER_OAUTH_MAX_PAGES)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from icp_common.errors import InvalidInput

from ..oauth.http import ProviderError, join
from ..oauth.settings import OAuthSettings
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
from .upstream import bounded_map, collect_pages, fetch_json, guard, refresh_access_token, text

GOOGLE_ADS_CUSTOMER_QUERY = "SELECT customer.id, customer.descriptive_name, customer.status FROM customer LIMIT 1"
LINKEDIN_PAGE_SIZE = 100
LINKEDIN_BATCH = 50
RESTLI_PROTOCOL_VERSION = "2.0.0"
TIKTOK_UNAUTHORIZED = {40104, 40105}
TIKTOK_FORBIDDEN = {40001}
NUMERIC = re.compile(r"[0-9]+")


def _dicts(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return [item for item in value if isinstance(item, dict)]


# ----------------------------------------------------------------------------------- Amazon


def _amazon_hosts(cfg: OAuthSettings, location: str) -> tuple[str, str]:
    region = location.strip().upper()
    if region == "EU":
        return cfg.amazon_auth_url_eu, cfg.amazon_ads_url_eu
    if region == "FE":
        return cfg.amazon_auth_url_fe, cfg.amazon_ads_url_fe
    return cfg.amazon_auth_url, cfg.amazon_ads_url


async def amazon_ads_profiles(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: AmazonAdsConnection
) -> list[AmazonProfile]:
    auth_url, api_url = _amazon_hosts(cfg, body.location)
    async with guard("fetching Amazon Ads profiles"):
        token = await refresh_access_token(
            http,
            join(auth_url, "/auth/o2/token"),
            client_id=body.client_id,
            client_secret=body.client_secret,
            refresh_token=body.refresh_token,
        )
        profiles = await fetch_json(
            http,
            "GET",
            join(api_url, "/v2/profiles"),
            headers={"Authorization": f"Bearer {token}", "Amazon-Advertising-API-ClientId": body.client_id},
        )
        result = []
        for profile in _dicts(profiles):
            if profile.get("profileId") in (None, ""):
                continue
            account = profile.get("accountInfo") or {}
            country = text(profile.get("countryCode"))
            result.append(
                AmazonProfile(
                    profile_id=text(profile["profileId"]),
                    name=f"{text(account.get('name'), profile['profileId'])} ({country})",
                    account_id=text(account.get("id")),
                    country_code=country,
                )
            )
        return result


# --------------------------------------------------------------------------------- Facebook


async def _graph_list(
    http: httpx.AsyncClient, cfg: OAuthSettings, context: str, path: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    """Every item of a Graph API edge, following `paging.cursors.after` while `paging.next` is set."""
    url = join(cfg.facebook_url, f"/{cfg.facebook_api_version}{path}")

    async def page(after: str | None) -> tuple[list[Any], str | None]:
        body = await fetch_json(http, "GET", url, params=params if after is None else {**params, "after": after})
        paging = body.get("paging") or {}
        following = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
        return _dicts(body.get("data")), following

    return await collect_pages(cfg.max_pages, context, page)


async def facebook_ads_accounts(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: FacebookAdsConnection
) -> list[FacebookAdAccount]:
    context = "fetching Facebook Ads accounts"
    async with guard(context):
        params = {"access_token": body.access_token, "fields": "account_id,name,account_status", "limit": "500"}
        accounts = await _graph_list(http, cfg, context, "/me/adaccounts", params)
        return [
            FacebookAdAccount(account_id=text(a["account_id"]), name=text(a.get("name"), a["account_id"]))
            for a in accounts
            if a.get("account_status") == 1 and a.get("account_id")  # ACTIVE
        ]


async def facebook_insights_pages(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: GraphTokenConnection
) -> list[Named]:
    context = "fetching Facebook pages"
    async with guard(context):
        params = {"access_token": body.refresh_token, "fields": "id,name", "limit": "100"}
        pages = await _graph_list(http, cfg, context, "/me/accounts", params)
        return [Named(id=text(p["id"]), name=text(p.get("name"), p["id"])) for p in pages if p.get("id")]


async def instagram_insights_accounts(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: GraphTokenConnection
) -> list[Named]:
    """The Instagram business/creator accounts connected to the Facebook pages the token manages."""
    context = "fetching Instagram accounts"
    async with guard(context):
        params = {
            "access_token": body.refresh_token,
            "fields": "name,instagram_business_account{id,username,name}",
            "limit": "100",
        }
        pages = await _graph_list(http, cfg, context, "/me/accounts", params)
        accounts = []
        for page in pages:
            account = page.get("instagram_business_account")
            if not isinstance(account, dict) or not account.get("id"):
                continue
            name = account.get("username") or account.get("name") or page.get("name")
            accounts.append(Named(id=text(account["id"]), name=text(name, account["id"])))
        return accounts


# ----------------------------------------------------------------------------------- Google


async def google_ads_customers(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: GoogleAdsConnection
) -> list[GoogleAdsCustomer]:
    api = join(cfg.google_ads_url, f"/{cfg.google_ads_version}")
    async with guard("fetching Google Ads customers"):
        token = await refresh_access_token(
            http,
            join(cfg.google_oauth_url, "/token"),
            client_id=body.client_id,
            client_secret=body.client_secret,
            refresh_token=body.refresh_token,
        )
        headers = {"Authorization": f"Bearer {token}", "developer-token": body.developer_token}
        listed = await fetch_json(http, "GET", f"{api}/customers:listAccessibleCustomers", headers=headers)
        names = [str(n) for n in listed.get("resourceNames") or []]

        async def describe(resource_name: str) -> GoogleAdsCustomer:
            customer_id = resource_name.rsplit("/", 1)[-1]
            try:
                batches = await fetch_json(
                    http,
                    "POST",
                    f"{api}/{resource_name}/googleAds:searchStream",
                    headers=headers,
                    json={"query": GOOGLE_ADS_CUSTOMER_QUERY},
                )
            except httpx.HTTPStatusError:  # not queryable (manager-only access, suspended, ...)
                return GoogleAdsCustomer(customer_id=customer_id, name=customer_id)
            for batch in _dicts(batches):
                for row in _dicts(batch.get("results")):
                    name = (row.get("customer") or {}).get("descriptiveName")
                    if name:
                        return GoogleAdsCustomer(customer_id=customer_id, name=f"{name} ({customer_id})")
            return GoogleAdsCustomer(customer_id=customer_id, name=customer_id)

        return await bounded_map(cfg.concurrency, names, describe)


# -------------------------------------------------------------------------------- Pinterest


async def pinterest_ads_accounts(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: RefreshTokenConnection
) -> list[Named]:
    context = "fetching Pinterest Ads accounts"
    async with guard(context):
        token = await refresh_access_token(
            http,
            join(cfg.pinterest_url, "/v5/oauth/token"),
            client_id=body.client_id,
            client_secret=body.client_secret,
            refresh_token=body.refresh_token,
            basic_auth=True,
        )
        url = join(cfg.pinterest_url, "/v5/ad_accounts")

        async def page(bookmark: str | None) -> tuple[list[Any], str | None]:
            params = {"page_size": "100"} if bookmark is None else {"page_size": "100", "bookmark": bookmark}
            data = await fetch_json(http, "GET", url, params=params, headers={"Authorization": f"Bearer {token}"})
            return _dicts(data.get("items")), data.get("bookmark")

        accounts = await collect_pages(cfg.max_pages, context, page)
        return [Named(id=text(a["id"]), name=text(a.get("name"), a["id"])) for a in accounts if a.get("id")]


# --------------------------------------------------------------------------------- Snapchat


async def snapchat_ads_accounts(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: RefreshTokenConnection
) -> list[Named]:
    api = join(cfg.snapchat_ads_url, "/v1")
    async with guard("fetching Snapchat Ads ad accounts"):
        token = await refresh_access_token(
            http,
            join(cfg.snapchat_accounts_url, "/login/oauth2/access_token"),
            client_id=body.client_id,
            client_secret=body.client_secret,
            refresh_token=body.refresh_token,
        )
        headers = {"Authorization": f"Bearer {token}"}
        organisations = await fetch_json(http, "GET", f"{api}/me/organizations", headers=headers)
        org_ids = [
            str(org_id)
            for wrapper in _dicts(organisations.get("organizations"))
            if (org_id := (wrapper.get("organization") or {}).get("id"))
        ]

        async def accounts_of(org_id: str) -> list[Named]:
            data = await fetch_json(http, "GET", f"{api}/organizations/{org_id}/adaccounts", headers=headers)
            found = []
            for wrapper in _dicts(data.get("adaccounts")):
                account = wrapper.get("adaccount") or {}
                if account.get("status") == "ACTIVE" and account.get("id"):
                    found.append(Named(id=text(account["id"]), name=text(account.get("name"), account["id"])))
            return found

        per_org = await bounded_map(cfg.concurrency, org_ids, accounts_of)
        return [account for accounts in per_org for account in accounts]


# --------------------------------------------------------------------------------- LinkedIn


async def _linkedin_token(http: httpx.AsyncClient, cfg: OAuthSettings, body: RefreshTokenConnection) -> dict[str, str]:
    token = await refresh_access_token(
        http,
        join(cfg.linkedin_oauth_url, "/oauth/v2/accessToken"),
        client_id=body.client_id,
        client_secret=body.client_secret,
        refresh_token=body.refresh_token,
    )
    return {
        "Authorization": f"Bearer {token}",
        "LinkedIn-Version": cfg.linkedin_version,
        "X-Restli-Protocol-Version": RESTLI_PROTOCOL_VERSION,
    }


async def linkedin_ads_accounts(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: RefreshTokenConnection
) -> list[Named]:
    context = "fetching LinkedIn Ads accounts"
    async with guard(context):
        headers = await _linkedin_token(http, cfg, body)
        url = join(cfg.linkedin_api_url, "/rest/adAccounts")

        async def page(token: str | None) -> tuple[list[Any], str | None]:
            params = {"q": "search", "pageSize": str(LINKEDIN_PAGE_SIZE)}
            if token is not None:
                params["pageToken"] = token
            data = await fetch_json(http, "GET", url, params=params, headers=headers)
            return _dicts(data.get("elements")), (data.get("metadata") or {}).get("nextPageToken")

        accounts = await collect_pages(cfg.max_pages, context, page)
        return [Named(id=text(a["id"]), name=text(a.get("name"), a["id"])) for a in accounts if a.get("id")]


async def linkedin_organizations(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: RefreshTokenConnection
) -> list[Named]:
    """Organisations the member administers (approved ADMINISTRATOR ACLs), named by one batch
    look-up per 50 organisations (ids only when that look-up is refused)."""
    context = "fetching LinkedIn organizations"
    async with guard(context):
        headers = await _linkedin_token(http, cfg, body)
        acl_url = join(cfg.linkedin_api_url, "/rest/organizationAcls")

        async def page(start: str | None) -> tuple[list[Any], str | None]:
            offset = int(start or 0)
            params = {
                "q": "roleAssignee",
                "role": "ADMINISTRATOR",
                "state": "APPROVED",
                "start": str(offset),
                "count": str(LINKEDIN_PAGE_SIZE),
            }
            data = await fetch_json(http, "GET", acl_url, params=params, headers=headers)
            elements = _dicts(data.get("elements"))
            total = (data.get("paging") or {}).get("total")
            following = offset + len(elements)
            more = following < total if isinstance(total, int) else len(elements) == LINKEDIN_PAGE_SIZE
            return elements, str(following) if elements and more else None

        acls = await collect_pages(cfg.max_pages, context, page)
        ids: list[str] = []
        for acl in acls:
            org_id = str(acl.get("organization") or "").rsplit(":", 1)[-1]
            if org_id and org_id not in ids:
                ids.append(org_id)

        async def names_of(batch: list[str]) -> dict[str, str]:
            url = join(cfg.linkedin_api_url, "/rest/organizations") + f"?ids=List({','.join(batch)})"
            try:
                data = await fetch_json(http, "GET", url, headers=headers)
            except httpx.HTTPStatusError:
                return {}
            results = data.get("results") or {}
            return {key: text(org.get("localizedName")) for key, org in results.items() if isinstance(org, dict)}

        numeric = [i for i in ids if NUMERIC.fullmatch(i)]
        batches = [numeric[i : i + LINKEDIN_BATCH] for i in range(0, len(numeric), LINKEDIN_BATCH)]
        names: dict[str, str] = {}
        for found in await bounded_map(cfg.concurrency, batches, names_of):
            names.update(found)
        return [Named(id=i, name=names.get(i) or i) for i in ids]


# ----------------------------------------------------------------------------------- TikTok


async def tiktok_ads_advertisers(
    http: httpx.AsyncClient, cfg: OAuthSettings, body: TiktokAdsConnection
) -> list[TiktokAdvertiser]:
    """The advertisers the access token may act for; listing them needs the platform's TikTok app
    (`TIKTOK_CLIENT_ID`/`_CLIENT_SECRET`). TikTok answers errors with HTTP 200 and a `code`."""
    context = "fetching TikTok Ads advertisers"
    app = cfg.credentials("tiktok")
    if not (app.client_id and app.client_secret):
        raise InvalidInput("OAuth provider tiktok is not configured")
    async with guard(context):
        data = await fetch_json(
            http,
            "GET",
            join(cfg.tiktok_url, "/open_api/v1.3/oauth2/advertiser/get/"),
            params={"app_id": app.client_id, "secret": app.client_secret},
            headers={"Access-Token": body.access_token},
        )
        code = data.get("code", 0)
        if code in TIKTOK_UNAUTHORIZED:
            raise ProviderError(401, f"Authorization failed while {context}.")
        if code in TIKTOK_FORBIDDEN:
            raise ProviderError(403, f"Authorization failed while {context}.")
        if code != 0:
            raise ProviderError(500, f"Failed {context}.")
        advertisers = _dicts((data.get("data") or {}).get("list"))
        return [
            TiktokAdvertiser(
                advertiser_id=text(a["advertiser_id"]), name=text(a.get("advertiser_name"), a["advertiser_id"])
            )
            for a in advertisers
            if a.get("advertiser_id")
        ]
