"""A fake of the nine ad platforms' OAuth token endpoints and of the account APIs behind
`/api/external/*`: one HTTP server, one route table per provider, every inbound request recorded.

Each real host is a path prefix: point `INTERLOPER_OAUTH_AMAZON_AUTH_URL` at `<fake.url>/api.amazon.com`
and so on (`fake.env()` / `fake.settings()` do it for every base URL), so a recorded request reads
like the real one (`recorded.upstream == "https://api.amazon.com/auth/o2/token"`).

Default behaviour (the constants below): a code exchange with `GOOD_CODE` succeeds, any other code is
refused as the provider would; a refresh-token grant with `REFRESH_TOKEN` returns `ACCESS_TOKEN`, which
every account API requires (Graph: `GRAPH_TOKEN`, TikTok: `TIKTOK_TOKEN`). Account lists are paged
by the fake with small pages so that pagination is exercised. `fake.script(path, status=..., json=...,
delay=...)` overrides a route (errors, slow answers); `fake.reset()` clears scripts and records.
Every answer sets a cookie, so a client that keeps cookies gives itself away.

Run it on its own for a local stack: `python -m icp_testing.fake_providers --port 9400`
prints the variables to export."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from icp_pipelines.oauth.settings import PROVIDERS, OAuthSettings

GOOD_CODE = "good-code"
REFRESH_TOKEN = "good-refresh-token"
ACCESS_TOKEN = "fresh-access-token"
GRAPH_TOKEN = "graph-user-token"
TIKTOK_TOKEN = "tiktok-access-token"
DEVELOPER_TOKEN = "google-developer-token"
SEARCH_DELAY = 0.05

AMAZON_PROFILES: dict[str, list[dict[str, Any]]] = {
    "advertising-api.amazon.com": [
        {"profileId": 1001, "countryCode": "US", "currencyCode": "USD", "accountInfo": {"id": "A1US", "name": "Acme"}},
        {"profileId": 1002, "countryCode": "CA", "currencyCode": "CAD", "accountInfo": {"id": "A1CA", "name": "Acme"}},
    ],
    "advertising-api-eu.amazon.com": [
        {"profileId": 2001, "countryCode": "DE", "currencyCode": "EUR", "accountInfo": {"id": "A2DE", "name": "Acme"}},
    ],
    "advertising-api-fe.amazon.com": [
        {"profileId": 3001, "countryCode": "JP", "currencyCode": "JPY", "accountInfo": {"id": "A3JP", "name": "Acme"}},
    ],
}
FACEBOOK_AD_ACCOUNTS: list[dict[str, Any]] = [
    {"id": "act_111", "account_id": "111", "name": "Active one", "account_status": 1},
    {"id": "act_222", "account_id": "222", "name": "Disabled", "account_status": 2},
    {"id": "act_333", "account_id": "333", "account_status": 1},
    {"id": "act_444", "account_id": "444", "name": "Closed", "account_status": 101},
    {"id": "act_555", "account_id": "555", "name": "On the last page", "account_status": 1},
]
FACEBOOK_PAGES: list[dict[str, Any]] = [
    {"id": "p1", "name": "Page One", "instagram_business_account": {"id": "ig1", "username": "page.one"}},
    {"id": "p2", "name": "Page Two"},
    {"id": "p3", "name": "Page Three", "instagram_business_account": {"id": "ig3", "name": "IG Three"}},
    {"id": "p4", "instagram_business_account": {"id": "ig4"}},
]
GOOGLE_CUSTOMERS: dict[str, Any] = {
    "1111111111": "Acme Ads",
    "2222222222": "Beta Brand",
    "3333333333": 403,  # not queryable
    "4444444444": None,  # no rows
    "5555555555": "Echo",
}
PINTEREST_ACCOUNTS = [
    {"id": "549755885175", "name": "Pin One", "owner": {"username": "acme"}},
    {"id": "549755885176", "name": "Pin Two"},
    {"id": "549755885177"},
    {"id": "549755885178", "name": "Pin Four"},
    {"id": "549755885179", "name": "Pin Five"},
]
SNAPCHAT_ORGANIZATIONS: dict[str, list[dict[str, Any]]] = {
    "org-1": [
        {"id": "sa-1", "name": "Snap One", "status": "ACTIVE"},
        {"id": "sa-2", "name": "Snap Paused", "status": "PAUSED"},
    ],
    "org-2": [{"id": "sa-3", "status": "ACTIVE"}, {"id": "sa-4", "name": "Snap Four", "status": "ACTIVE"}],
}
LINKEDIN_AD_ACCOUNTS = [
    {"id": 501, "name": "LinkedIn One", "status": "ACTIVE", "currency": "EUR"},
    {"id": 502, "name": "LinkedIn Two", "status": "CANCELED", "currency": "USD"},
    {"id": 503, "status": "DRAFT", "currency": "USD"},
]
LINKEDIN_ORGANIZATIONS = {"101": "Org A", "102": "Org B", "103": None, "104": "Org D"}
TIKTOK_ADVERTISERS = [
    {"advertiser_id": "7001", "advertiser_name": "Tik One"},
    {"advertiser_id": "7002", "advertiser_name": ""},
]


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes

    @property
    def upstream(self) -> str:
        """The URL the real provider would have received, without the query."""
        return "https://" + self.path.lstrip("/")

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass
class Script:
    status: int = 200
    json: Any = None
    text: str | None = None
    delay: float = 0.0
    method: str | None = None


Answer = tuple[int, Any]
Handler = Callable[[Recorded, "re.Match[str]"], Awaitable[Answer]]


@dataclass
class FakeProviders:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---------------------------------------------------------------------------- control

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.scripts.clear()
            self.in_flight.clear()
            self.max_in_flight.clear()

    def script(
        self,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        text: str | None = None,
        delay: float = 0.0,
        method: str | None = None,
    ) -> None:
        """Answer requests to `path` (e.g. `/oauth2.googleapis.com/token`) with this instead."""
        self.scripts[path] = Script(status, json, text, delay, method)

    def to(self, path_prefix: str) -> list[Recorded]:
        """Recorded requests whose path starts with `path_prefix` (e.g. `/api.pinterest.com/`)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def base_urls(self) -> dict[str, str]:
        """Every base URL setting of OAuthSettings, pointed at this fake."""
        urls = {}
        for name, info in OAuthSettings.model_fields.items():
            if name.endswith("_url") or name.endswith("_url_eu") or name.endswith("_url_fe"):
                urls[name] = f"{self.url}/{urlsplit(str(info.default)).netloc}"
        return urls

    @staticmethod
    def credentials() -> dict[str, str]:
        """client id, secret and redirect URI of every provider's app."""
        values = {}
        for provider in PROVIDERS:
            values[f"{provider}_client_id"] = f"{provider}-client-id"
            values[f"{provider}_client_secret"] = f"{provider}-client-secret"
            values[f"{provider}_redirect_uri"] = f"http://ui.example/auth/{provider}"
        return values

    def env(self, *, credentials: bool = True) -> dict[str, str]:
        """`INTERLOPER_OAUTH_*` variables: every base URL (and every provider's app)."""
        values = {**self.base_urls(), **(self.credentials() if credentials else {})}
        return {f"INTERLOPER_OAUTH_{name.upper()}": value for name, value in values.items()}

    def settings(self, **overrides: Any) -> OAuthSettings:
        return OAuthSettings(**{**self.base_urls(), **self.credentials(), **overrides})

    # -------------------------------------------------------------------------------- app

    def app(self) -> Starlette:
        routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            (method, re.compile(pattern), name, handler)
            for method, pattern, name, handler in [
                ("POST", r"/api\.amazon\.(com|co\.uk|co\.jp)/auth/o2/token", "amazon-token", self._token),
                ("GET", r"/(advertising-api(-eu|-fe)?\.amazon\.com)/v2/profiles", "amazon-profiles", self._amazon),
                ("POST", r"/api\.criteo\.com/oauth2/token", "criteo-token", self._token),
                ("GET", r"/graph\.facebook\.com/v19\.0/oauth/access_token", "facebook-token", self._token),
                ("GET", r"/graph\.facebook\.com/v21\.0/me/adaccounts", "facebook-adaccounts", self._fb_ad_accounts),
                ("GET", r"/graph\.facebook\.com/v21\.0/me/accounts", "facebook-pages", self._fb_pages),
                ("POST", r"/oauth2\.googleapis\.com/token", "google-token", self._token),
                (
                    "GET",
                    r"/googleads\.googleapis\.com/v20/customers:listAccessibleCustomers",
                    "google-customers",
                    self._google_customers,
                ),
                (
                    "POST",
                    r"/googleads\.googleapis\.com/v20/customers/(\d+)/googleAds:searchStream",
                    "google-search",
                    self._google_search,
                ),
                ("POST", r"/www\.linkedin\.com/oauth/v2/accessToken", "linkedin-token", self._token),
                ("GET", r"/api\.linkedin\.com/rest/adAccounts", "linkedin-adaccounts", self._linkedin_accounts),
                ("GET", r"/api\.linkedin\.com/rest/organizationAcls", "linkedin-acls", self._linkedin_acls),
                ("GET", r"/api\.linkedin\.com/rest/organizations", "linkedin-organizations", self._linkedin_orgs),
                (
                    "POST",
                    r"/login\.microsoftonline\.com/common/oauth2/v2\.0/token",
                    "microsoft-token",
                    self._token,
                ),
                ("POST", r"/api\.pinterest\.com/v5/oauth/token", "pinterest-token", self._token),
                ("GET", r"/api\.pinterest\.com/v5/ad_accounts", "pinterest-adaccounts", self._pinterest_accounts),
                ("POST", r"/accounts\.snapchat\.com/login/oauth2/access_token", "snapchat-token", self._token),
                ("GET", r"/adsapi\.snapchat\.com/v1/me/organizations", "snapchat-organizations", self._snap_orgs),
                (
                    "GET",
                    r"/adsapi\.snapchat\.com/v1/organizations/([^/]+)/adaccounts",
                    "snapchat-adaccounts",
                    self._snap_accounts,
                ),
                (
                    "POST",
                    r"/business-api\.tiktok\.com/open_api/v1\.3/oauth2/access_token",
                    "tiktok-token",
                    self._tiktok_token,
                ),
                (
                    "GET",
                    r"/business-api\.tiktok\.com/open_api/v1\.3/oauth2/advertiser/get/",
                    "tiktok-advertisers",
                    self._tiktok_advertisers,
                ),
            ]
        ]

        async def endpoint(request: Request) -> Response:
            recorded = Recorded(
                method=request.method,
                path=request.url.path,
                query_string=request.url.query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
            )
            with self._lock:
                self.requests.append(recorded)
            script = self.scripts.get(recorded.path)
            if script is not None and script.method in (None, recorded.method):
                await asyncio.sleep(script.delay)
                if script.text is not None:
                    return self._answer(Response(script.text, status_code=script.status, media_type="text/plain"))
                return self._answer(JSONResponse(script.json, status_code=script.status))
            for method, pattern, name, handler in routes:
                match = pattern.fullmatch(recorded.path)
                if match and method == recorded.method:
                    with self._lock:
                        self.in_flight[name] = self.in_flight.get(name, 0) + 1
                        self.max_in_flight[name] = max(self.max_in_flight.get(name, 0), self.in_flight[name])
                    try:
                        status, body = await handler(recorded, match)
                    finally:
                        with self._lock:
                            self.in_flight[name] -= 1
                    return self._answer(JSONResponse(body, status_code=status))
            return self._answer(JSONResponse({"error": "not_found", "path": recorded.path}, status_code=404))

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])

    @staticmethod
    def _answer(response: Response) -> Response:
        response.set_cookie("provider_session", "s3cr3t", path="/")
        return response

    # ---------------------------------------------------------------------------- tokens

    @staticmethod
    def _fields(request: Recorded) -> dict[str, Any]:
        if request.method == "GET":
            return request.query
        if request.content_type == "application/json":
            body = request.json
            return body if isinstance(body, dict) else {}
        return request.form

    @staticmethod
    def _bearer(request: Recorded, token: str = ACCESS_TOKEN) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    async def _token(self, request: Recorded, match: re.Match[str]) -> Answer:
        fields = self._fields(request)
        grant = fields.get("grant_type")
        if grant == "refresh_token":
            if fields.get("refresh_token") != REFRESH_TOKEN:
                return 400, {"error": "invalid_grant", "error_description": "refresh token revoked"}
            return 200, {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}
        if grant == "authorization_code" and fields.get("code") == GOOD_CODE:
            provider = request.path.split("/")[1]
            return 200, {
                "access_token": f"access-from-{provider}",
                "refresh_token": f"refresh-from-{provider}",
                "token_type": "bearer",
                "expires_in": 3600,
            }
        return 400, {"error": "invalid_grant", "error_description": "authorization code is invalid"}

    async def _tiktok_token(self, request: Recorded, match: re.Match[str]) -> Answer:
        fields = self._fields(request)
        if fields.get("auth_code") != GOOD_CODE:
            return 200, {"code": 40007, "message": "auth_code is invalid", "data": {}, "request_id": "r-1"}
        data = {"access_token": TIKTOK_TOKEN, "advertiser_ids": ["7001", "7002"], "scope": [4, 5]}
        return 200, {"code": 0, "message": "OK", "data": data, "request_id": "r-2"}

    # --------------------------------------------------------------------------- accounts

    async def _amazon(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._bearer(request) or not request.headers.get("amazon-advertising-api-clientid"):
            return 401, {"code": "UNAUTHORIZED", "details": "Not authorized"}
        return 200, AMAZON_PROFILES[match.group(1)]

    @staticmethod
    def _graph_page(request: Recorded, items: list[dict[str, Any]], size: int = 2) -> Answer:
        if request.query.get("access_token") != GRAPH_TOKEN:
            error = {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}
            return 400, {"error": error}
        start = int(request.query.get("after", "c0")[1:])
        page = items[start : start + size]
        cursors = {"before": f"c{start}", "after": f"c{start + len(page)}"}
        paging: dict[str, Any] = {"cursors": cursors}
        if start + size < len(items):
            paging["next"] = f"https://{request.path.lstrip('/')}?after={cursors['after']}"
        return 200, {"data": page, "paging": paging}

    async def _fb_ad_accounts(self, request: Recorded, match: re.Match[str]) -> Answer:
        fields = request.query.get("fields", "").split(",")
        items = [{k: v for k, v in a.items() if k in fields or k == "id"} for a in FACEBOOK_AD_ACCOUNTS]
        return self._graph_page(request, items)

    async def _fb_pages(self, request: Recorded, match: re.Match[str]) -> Answer:
        wants_instagram = "instagram_business_account" in request.query.get("fields", "")
        items = [
            {k: v for k, v in p.items() if k != "instagram_business_account" or wants_instagram} for p in FACEBOOK_PAGES
        ]
        return self._graph_page(request, items)

    async def _google_customers(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._bearer(request) or request.headers.get("developer-token") != DEVELOPER_TOKEN:
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}
        return 200, {"resourceNames": [f"customers/{c}" for c in GOOGLE_CUSTOMERS]}

    async def _google_search(self, request: Recorded, match: re.Match[str]) -> Answer:
        await asyncio.sleep(SEARCH_DELAY)
        if not self._bearer(request) or request.headers.get("developer-token") != DEVELOPER_TOKEN:
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}
        customer_id = match.group(1)
        known = GOOGLE_CUSTOMERS.get(customer_id)
        if isinstance(known, int):
            return known, {"error": {"code": known, "status": "PERMISSION_DENIED"}}
        results = []
        if known is not None:
            customer = {"resourceName": f"customers/{customer_id}", "id": customer_id, "descriptiveName": known}
            results.append({"customer": {**customer, "status": "ENABLED"}})
        return 200, [{"results": results, "fieldMask": "customer.id,customer.descriptiveName,customer.status"}]

    async def _pinterest_accounts(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._bearer(request):
            return 401, {"code": 2, "message": "Authentication failed."}
        start = int(request.query.get("bookmark", "bm0")[2:])
        page = PINTEREST_ACCOUNTS[start : start + 2]
        following = start + 2
        return 200, {"items": page, "bookmark": f"bm{following}" if following < len(PINTEREST_ACCOUNTS) else None}

    async def _snap_orgs(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._bearer(request):
            return 401, {"request_status": "ERROR", "display_message": "Unauthorized"}
        organizations = [
            {"sub_request_status": "SUCCESS", "organization": {"id": org_id, "name": org_id.upper()}}
            for org_id in SNAPCHAT_ORGANIZATIONS
        ]
        return 200, {"request_status": "SUCCESS", "organizations": organizations}

    async def _snap_accounts(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._bearer(request):
            return 401, {"request_status": "ERROR", "display_message": "Unauthorized"}
        accounts = SNAPCHAT_ORGANIZATIONS.get(match.group(1))
        if accounts is None:
            return 404, {"request_status": "ERROR"}
        wrapped = [{"sub_request_status": "SUCCESS", "adaccount": a} for a in accounts]
        return 200, {"request_status": "SUCCESS", "adaccounts": wrapped}

    @classmethod
    def _linkedin_ok(cls, request: Recorded) -> bool:
        return (
            cls._bearer(request)
            and bool(request.headers.get("linkedin-version"))
            and request.headers.get("x-restli-protocol-version") == "2.0.0"
        )

    async def _linkedin_accounts(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._linkedin_ok(request):
            return 401, {"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"}
        start = int(request.query.get("pageToken", "t0")[1:])
        page = LINKEDIN_AD_ACCOUNTS[start : start + 2]
        metadata = {"nextPageToken": f"t{start + 2}"} if start + 2 < len(LINKEDIN_AD_ACCOUNTS) else {}
        return 200, {"elements": page, "metadata": metadata, "paging": {"start": 0, "count": 2, "links": []}}

    async def _linkedin_acls(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._linkedin_ok(request):
            return 401, {"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"}
        start = int(request.query.get("start", "0"))
        ids = list(LINKEDIN_ORGANIZATIONS)
        elements = [
            {
                "roleAssignee": "urn:li:person:abc",
                "state": "APPROVED",
                "role": "ADMINISTRATOR",
                "organization": f"urn:li:organization:{org_id}",
            }
            for org_id in ids[start : start + 2]
        ]
        return 200, {"elements": elements, "paging": {"start": start, "count": 2, "total": len(ids), "links": []}}

    async def _linkedin_orgs(self, request: Recorded, match: re.Match[str]) -> Answer:
        if not self._linkedin_ok(request):
            return 401, {"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"}
        listed = re.fullmatch(r"ids=List\(([0-9,]*)\)", request.query_string)
        if listed is None:
            return 400, {"status": 400, "message": "ids must be List(...)"}
        results = {}
        for org_id in listed.group(1).split(","):
            name = LINKEDIN_ORGANIZATIONS.get(org_id)
            if name is not None:
                results[org_id] = {"id": int(org_id), "localizedName": name}
        return 200, {"results": results, "statuses": {}, "errors": {}}

    async def _tiktok_advertisers(self, request: Recorded, match: re.Match[str]) -> Answer:
        if request.headers.get("access-token") != TIKTOK_TOKEN:
            return 200, {"code": 40105, "message": "Access token is incorrect or has been revoked.", "data": {}}
        if not request.query.get("app_id") or not request.query.get("secret"):
            return 200, {"code": 40002, "message": "app_id and secret are required", "data": {}}
        return 200, {"code": 0, "message": "OK", "data": {"list": TIKTOK_ADVERTISERS}}


@contextmanager
def serve_in_thread(fake: FakeProviders, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeProviders]:
    """Serve `fake` from a background thread with its own event loop (reachable from the test's
    event loop and from other processes alike); sets `fake.url`."""
    if not port:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        fake.app(),
        host=host,
        port=port,
        log_config=None,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-providers", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake provider server did not start")
        time.sleep(0.01)
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9400)
    args = parser.parse_args()
    with serve_in_thread(FakeProviders(), args.host, args.port) as fake:
        for name, value in sorted(fake.env().items()):
            print(f"export {name}={value}")
        print(f"# fake providers on {fake.url}; codes: {GOOD_CODE}, refresh token: {REFRESH_TOKEN}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
