"""The gateway: the only component that reads the session cookie. For each /api request it
asks identity who the caller is (or reuses identity's recent answer: authcache.py), forwards a
signed identity assertion to the owning service and streams the answer back. It serves health,
the aggregated OpenAPI and the realtime relays itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from icp_common import nats as nats_helpers
from icp_common.context import new_request_id, request_id_var
from icp_common.errors import DomainError
from icp_common.grpc import InternalClient
from icp_common.identity import IDENTITY_HEADER, REQUEST_ID_HEADER, IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.telemetry import wrap_asgi
from icp_common.web import RequestContextMiddleware, install_error_handlers, install_health

from .authcache import AuthCache
from .authn import SESSION_COOKIE, Authenticator, bearer_token, fence_on_success
from .csrf import is_cross_site_write, origin_of
from .docs import install_docs
from .health import detailed_health
from .icons import IconSets, install_icons
from .proxy import BodyTooLarge, UpstreamDown, UpstreamFailed, declared_length, forward, new_session
from .realtime import RealtimeHub
from .route_labels import LATENCY, REQUESTS, SPA_ROUTE, RouteLabels, learn_forever
from .routes_table import owner_of
from .settings import Settings
from .spa import SpaFiles, find_static_dir
from .ws import install_realtime_routes

log = logging.getLogger(__name__)

# Replaced by the gateway's own values (an identity header from outside is never trusted).
_REPLACED = frozenset(
    {
        IDENTITY_HEADER.encode(),
        b"x-interloper-internal",
        b"host",
        b"connection",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-for",
        REQUEST_ID_HEADER.encode(),
        b"x-interloper-edge",
    }
)
# Set by Traefik on every request of the public entrypoint (a client cannot remove it there):
# probes, metrics and the detailed health are not for the internet (they name internal URLs).
EDGE_HEADER = b"x-interloper-edge"
_TOO_LARGE = {"detail": "Content Too Large"}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


class Gateway:
    """ASGI entry: gateway-owned paths go to a small FastAPI app, the rest is proxied."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.require_secret()
        self.signer = IdentitySigner(secret, settings.identity_ttl_seconds)
        addresses = settings.addresses
        self.upstreams: dict[str, str] = {
            "identity": addresses.identity_url,
            "pipelines": addresses.pipelines_url,
            "agent": addresses.agent_url,
            "notifications": addresses.notifications_url,  # only /api/organisations/{id}/alerts
        }
        self.health_targets: dict[str, str] = {
            **self.upstreams,
            "pipelines-scheduler": addresses.scheduler_url,
            "pipelines-worker": addresses.worker_url,
        }
        self._secret = secret
        self.authenticator: Authenticator | None = None  # needs the running loop: made in lifespan
        self._http: aiohttp.ClientSession | None = None  # needs the running loop: made in lifespan
        self.resources = ServiceResources("gateway", settings)
        self.hub = RealtimeHub()
        self.allowed_origins = frozenset(
            {origin_of(settings.public_url)} | {o.lower().rstrip("/") for o in settings.allowed_origins}
        )
        static = find_static_dir() if settings.serve_ui else None
        self.spa = SpaFiles(static) if static is not None else None
        self.route_labels = RouteLabels()
        self.own = self._own_app()
        self.app = RequestContextMiddleware(self._dispatch, service="gateway", families=(REQUESTS, LATENCY))
        self.asgi: ASGIApp = wrap_asgi(self.app, _span_name)  # server spans, only when tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    # ---- gateway-owned routes ------------------------------------------------------

    def _own_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            identity_client = InternalClient(
                self.settings.addresses.identity_grpc_target, self._secret, self.signer, audience="identity"
            )
            cache = AuthCache(self.settings.gateway_auth_cache_ttl, self.settings.gateway_auth_cache_size)
            self.authenticator = Authenticator(identity_client, self.settings.authenticate_timeout, cache)
            self._http = new_session(self.settings.upstream_connect_timeout, self.settings.upstream_read_timeout)
            await self.resources.start()
            assert self.resources.nc is not None
            await self.hub.start(self.resources.nc)
            if cache.enabled:
                await cache.follow(self.resources.nc)
                nats_helpers.on_reconnected(self.resources.nc, cache.on_reconnected)
            log.info("routing: %s", {k: v for k, v in self.upstreams.items() if v})
            learning = asyncio.create_task(learn_forever(self.route_labels, self.http, self.upstreams))
            try:
                yield
            finally:
                learning.cancel()  # waited for at most 5 s: a lost cancellation never holds the shutdown
                await asyncio.wait({learning}, timeout=5)
                await self.hub.stop()
                await cache.stop()
                await self.resources.stop()
                await self.http.close()
                await identity_client.close()

        app = FastAPI(
            title="Interloper API",
            lifespan=lifespan,
            docs_url=None,  # served by install_docs, with Swagger UI from our own origin
            openapi_url=None,
            redoc_url=None,
            max_body_size=self.settings.max_body_bytes,
            # Traced by the gateway's own middleware (icp_common.telemetry.wrap_asgi), not twice.
            telemetry={"tracing": False, "metrics": False, "logs": False},
        )
        install_error_handlers(app)
        install_health(app, "gateway", self.resources.checks())
        install_docs(app, "/api/openapi.json", app.title)
        install_icons(app, IconSets(Path(self.settings.icons_dir) if self.settings.icons_dir else None))
        install_realtime_routes(
            app, self.hub, self._authenticator, self._origin_allowed, self.settings.realtime_recheck_seconds
        )

        @app.get("/api/health")
        async def health(request: Request, detail: bool = False) -> Response:
            if not detail or _from_edge(request.scope):
                return _json(200, {"status": "ok"})
            return await health_detail(request)

        @app.get("/api/health/detail")
        async def health_detail(_: Request) -> Response:
            nc = self.resources.nc
            ready, body = await detailed_health(self.http, self.health_targets, bool(nc and nc.is_connected))
            return _json(200 if ready else 503, body)

        @app.get("/api/edge/errors/{status}", include_in_schema=False)
        async def edge_error(status: int) -> Response:
            # Traefik's error page for its own refusals (413 of the body limit), as our JSON.
            if status == 413:
                return _json(413, _TOO_LARGE)
            return _json(404, {"detail": "Not Found"})

        @app.get("/api/openapi.json", include_in_schema=False)
        async def openapi() -> Response:
            return _json(200, await self._aggregated_openapi(app))

        return app

    def _origin_allowed(self, headers: dict[str, str]) -> bool:
        """For WebSocket handshakes, which browsers send cross-site with cookies and Origin."""
        origin = headers.get("origin")
        if not origin:
            return True  # not a browser
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        own = {f"http://{host}".lower(), f"https://{host}".lower()}
        return origin.lower().rstrip("/") in own | self.allowed_origins

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "the gateway's lifespan has not run"
        return self._http

    def _authenticator(self) -> Authenticator:
        assert self.authenticator is not None, "the gateway's lifespan has not run"
        return self.authenticator

    async def _aggregated_openapi(self, own: FastAPI) -> dict[str, Any]:
        """The gateway's own paths plus every reachable service's public (/api) paths."""
        spec: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "Interloper API", "version": "0.2.0"},
            "paths": {},
            "components": {"schemas": {}},
        }
        sources = [own.openapi()]
        for name, url in self.upstreams.items():
            if not url:
                continue
            try:
                async with self.http.get(f"{url}/openapi.json", timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                    sources.append(await response.json())
            except (aiohttp.ClientError, TimeoutError, ValueError):
                log.warning("OpenAPI of %s unavailable", name)
        for source in sources:
            spec["paths"].update({p: v for p, v in source.get("paths", {}).items() if p.startswith("/api")})
            spec["components"]["schemas"].update(source.get("components", {}).get("schemas", {}))
        return spec

    # ---- dispatch -------------------------------------------------------------------

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.own(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["type"] == "http" and "\x00" in path:  # names nothing; file lookups would raise
            await _json(400, {"detail": "Invalid path"})(scope, receive, send)
            return
        if scope["type"] == "http":
            length = declared_length(scope["headers"])
            if length is not None and length > self.settings.max_body_bytes:
                # Before authentication and before reading any of it.
                await _json(413, _TOO_LARGE)(scope, receive, send)
                return
            if path.rstrip("/") in _INTERNAL_PATHS and _from_edge(scope):  # the cheap test first
                await _json(404, {"detail": "Not Found"})(scope, receive, send)
                return
        if self.spa is not None and scope["type"] == "http" and not _is_gateway_path(path):
            scope["icp.route"] = ("gateway", SPA_ROUTE)
            await self.spa(scope, receive, send)
            return
        service = owner_of(path) if scope["type"] == "http" else None
        if service is None:
            await self.own(scope, receive, send)
            return
        scope["icp.route"] = (service, self.route_labels.label(service, path))  # metric labels
        try:
            response = await self._proxy(service, scope, receive, send)
        except DomainError as exc:
            response = _json(exc.status_code, {"detail": exc.detail}, exc.headers)
        if response is not None:
            await response(scope, receive, send)

    async def _proxy(self, service: str, scope: Scope, receive: Receive, send: Send) -> Response | None:
        base_url = self.upstreams.get(service)
        if not base_url:
            return _json(404, {"detail": "Not Found"})
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        cookie_header = headers.get("cookie")
        token = _session_token(cookie_header) if cookie_header else None
        bearer = bearer_token(headers.get("authorization"))  # beats the cookie
        host = headers.get("x-forwarded-host") or headers.get("host", "")
        scheme = headers.get("x-forwarded-proto") or scope.get("scheme", "http")
        # A browser never adds a bearer token on its own: such a request is not a forgery risk.
        if bearer is None and is_cross_site_write(
            scope["method"], token is not None, headers, f"{scheme}://{host}".lower(), self.allowed_origins
        ):
            return _json(403, {"detail": "Cross-site request refused"})

        assert self.authenticator is not None, "the gateway's lifespan has not run"
        identity = await self.authenticator.authenticate(token, bearer=bearer)
        if service == "identity" and scope["method"] not in _SAFE_METHODS:
            # The next request of anyone this write may concern asks identity again (the "next
            # request" rule; other replicas learn it from identity's events).
            authenticator = self.authenticator
            send = fence_on_success(send, lambda: authenticator.fence(identity))
        forwarded_for = headers.get("x-forwarded-for")
        client = scope.get("client")
        if client:
            forwarded_for = f"{forwarded_for}, {client[0]}" if forwarded_for else client[0]
        forwarded = [(k, v) for k, v in scope["headers"] if k not in _REPLACED]
        if bearer is not None:  # the token's secret stays at the edge (the assertion says who)
            forwarded = [(k, v) for k, v in forwarded if k != b"authorization"]
        forwarded += [
            (b"host", host.encode("latin-1")),
            (b"x-forwarded-host", host.encode("latin-1")),
            (b"x-forwarded-proto", scheme.encode("latin-1")),
            (IDENTITY_HEADER.encode(), self.signer.sign(identity, audience=service).encode()),  # bound to the upstream
            (REQUEST_ID_HEADER.encode(), (request_id_var.get() or new_request_id()).encode()),
        ]
        if forwarded_for:
            forwarded.append((b"x-forwarded-for", forwarded_for.encode("latin-1")))
        try:
            await forward(self.http, base_url, scope, receive, send, forwarded, self.settings.max_body_bytes)
        except BodyTooLarge:
            return _json(413, _TOO_LARGE)
        except UpstreamDown as exc:
            log.warning("%s is unavailable: %s", service, exc)
            return _json(503, {"detail": f"Service unavailable: {service}"}, {"Retry-After": "1"})
        except UpstreamFailed as exc:
            log.warning("%s failed to answer: %s", service, exc)
            return _json(502, {"detail": f"Bad gateway: {service} did not answer"})
        return None


_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_INTERNAL_PATHS = _PROBES | {"/api/health/detail"}


def _is_gateway_path(path: str) -> bool:
    """/api and the process probes are the gateway's; every other path is the web UI's."""
    return path == "/api" or path.startswith("/api/") or path in _PROBES


def _span_name(scope: Scope) -> str:
    """`POST pipelines`: the method and the owning service, never the path (ids, tokens)."""
    path = scope.get("path", "")
    owner = owner_of(path) if scope["type"] == "http" else None
    return f"{scope.get('method', 'WS')} {owner or ('api' if _is_gateway_path(path) else 'ui')}"


def _from_edge(scope: Scope) -> bool:
    return any(name == EDGE_HEADER for name, _ in scope["headers"])


def _session_token(cookie_header: str) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(cookie_header)
    except Exception:  # a malformed Cookie header is just "no session"
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def create_app(settings: Settings) -> Gateway:
    return Gateway(settings)
