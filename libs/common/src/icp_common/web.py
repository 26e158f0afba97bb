"""FastAPI plumbing shared by every service: the app factory with request ids, access logs,
metrics, health, the domain-error handler table, and identity/role dependencies."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audit import record_denied
from .context import new_request_id, request_id_var
from .errors import (
    DATA_ERROR_DETAIL,
    DATABASE_UNAVAILABLE_DETAIL,
    TRANSACTION_CONFLICT_DETAIL,
    DomainError,
    is_data_error,
    is_transaction_conflict,
    is_unavailable_error,
)
from .identity import (
    IDENTITY_HEADER,
    REQUEST_ID_HEADER,
    Identity,
    IdentitySigner,
    require_authenticated,
    require_role,
)
from .settings import AccessLogSettings
from .slashes import install_trailing_slash_alias
from .strict_json import reject_non_finite_json
from .telemetry import annotate_request, instrument_fastapi

log = logging.getLogger("icp.http")

HTTP_REQUESTS = Counter("icp_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "icp_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ReadinessCheck = Callable[[], Awaitable[bool]]
# Methods kept as metric labels; any other (a client may send any token) is "OTHER".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROBE_PATHS = {"/healthz", "/readyz", "/metrics"}

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body any service accepts (413 beyond; our API bodies are small JSON)."""

# A client's X-Request-Id is echoed and logged: only a short, plain value is kept.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
# Path segments that are secrets (the invitation link's token): never written to a log.
_SECRET_SEGMENT = re.compile(r"^(/invite/)[^/]+")


def request_id_of(headers: dict[bytes, bytes]) -> str:
    """The client's X-Request-Id when it is short and plain, else a new one."""
    value = headers.get(REQUEST_ID_HEADER.encode(), b"")
    return value.decode("ascii") if _REQUEST_ID.fullmatch(value) else new_request_id()


def loggable_path(path: str) -> str:
    """`path` with secret segments (invitation tokens) replaced for access logs."""
    return _SECRET_SEGMENT.sub(r"\1<redacted>", path)


def _relative_location(headers: list[tuple[bytes, bytes]], hosts: set[bytes]) -> list[tuple[bytes, bytes]]:
    """A redirect to the request's own Host (client-chosen, e.g. Starlette's trailing-slash
    307) becomes relative, so no answer ever names a host the client made up."""
    result = []
    for name, value in headers:
        if name.lower() == b"location":
            url = urlsplit(value.decode("latin-1"))
            if url.scheme in ("http", "https") and url.netloc.encode("latin-1").lower() in hosts:
                relative = (url.path or "/") + (f"?{url.query}" if url.query else "")
                value = relative.encode("latin-1")
        result.append((name, value))
    return result


class BodyLimitMiddleware:
    """413 `{"detail": "Content Too Large"}` for a body beyond `max_bytes`: at once when its
    Content-Length says so (nothing read), or as soon as a streamed (chunked) body grows past it
    (the read fails with the 413, so the handler never runs on part of a body).

    Ours rather than FastAPI's `max_body_size`, which answers a declared oversize in text/plain."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = b""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": "Content Too Large"}, status_code=413)(scope, receive, send)
            return
        if not chunked and scope.get("http_version") != "2" and (declared.isdigit() or not declared):
            # HTTP/1.1 framing: the server delivers at most the declared length, and a request
            # with neither header has no body (RFC 9112 6.3): nothing to count, no wrapper.
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, "Content Too Large")  # re-raised by FastAPI's body read
            return message

        await self.app(scope, limited, send)


class RequestContextMiddleware:
    """Request id in/out and metrics per request (pure ASGI: no buffering). Logs a request that
    failed (5xx) or was slow at WARNING; every other one only with `access.access_log` on (INFO),
    else at DEBUG: Traefik keeps the access log, and a line per request on every hop cost 15-24 %
    of the gateway's CPU (bench, issue 17)."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        access: AccessLogSettings | None = None,
        families: tuple[Counter, Histogram] | None = None,
    ) -> None:
        self.app = app
        self.service = service
        access = access or AccessLogSettings()
        # The gateway's own families label the owning service (`upstream`) where ours say
        # `service`; an app that routes by hand names the route in scope["icp.route"].
        self.requests, self.latency = families or (HTTP_REQUESTS, HTTP_LATENCY)
        self.quiet_level = logging.INFO if access.access_log else logging.DEBUG
        self.slow_seconds = access.slow_request_ms / 1000
        # (owner, method, route, status) -> its counter and histogram children: `labels()` costs more
        # than the update itself. As many entries as Prometheus keeps series.
        self._series: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = request_id_of(headers)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                if 300 <= status < 400:
                    hosts = {headers[k].lower() for k in (b"host", b"x-forwarded-host") if k in headers}
                    message["headers"] = _relative_location(message["headers"], hosts)
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            if path not in _PROBE_PATHS:
                elapsed = time.perf_counter() - started
                labelled = scope.get("icp.route")  # (owner, template) set by a hand-made router
                if labelled is not None:
                    owner, template = labelled
                else:
                    owner, template = self.service, getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                if method not in _METHODS:  # the client chooses it: one label for any other token
                    method = "OTHER"
                key = (owner, method, template, status)
                series = self._series.get(key)
                if series is None:
                    series = (
                        self.requests.labels(owner, key[1], template, str(status)),
                        self.latency.labels(owner, key[1], template),
                    )
                    self._series[key] = series
                series[0].inc()
                series[1].observe(elapsed)
                level = logging.WARNING if status >= 500 or elapsed >= self.slow_seconds else self.quiet_level
                if log.isEnabledFor(level):
                    log.log(
                        level,
                        "%s %s -> %s in %.1f ms",
                        scope["method"],
                        loggable_path(path),
                        status,
                        elapsed * 1000,
                        extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                    )
            request_id_var.reset(token)


def install_error_handlers(app: FastAPI) -> None:
    """Domain error -> its status and `{"detail": ...}`; unique violation -> 409; the database
    unreachable (restarting, a dropped connection), or a transaction it aborted for a concurrent one
    (deadlock, serialization failure: nothing committed) -> JSON 503 with Retry-After; anything else
    -> 500 `Internal Server Error` (text/plain, as the public contract shows it)."""

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        if exc.status_code == 403:  # a refused write is an audit entry (outcome "denied")
            await record_denied(request)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def integrity_error(_: Request, exc: Exception) -> Response:
        log.info("integrity error mapped to 409: %s", exc)
        return JSONResponse({"detail": "Conflict with an existing record"}, status_code=409)

    async def data_error(request: Request, exc: Exception) -> Response:
        # A value PostgreSQL refuses (class 22: NUL in text, out-of-range numbers, bad JSON) is
        # the client's mistake: 422, never a 500.
        if is_data_error(exc):
            log.info("database refused a value: %s", exc)
            return JSONResponse({"detail": DATA_ERROR_DETAIL}, status_code=422)
        return await unhandled(request, exc)

    async def unhandled(_: Request, exc: Exception) -> Response:
        if is_unavailable_error(exc):  # PostgreSQL restarting or a connection it dropped: retry
            log.warning("database unavailable: %s", exc)
            return JSONResponse({"detail": DATABASE_UNAVAILABLE_DETAIL}, status_code=503, headers={"Retry-After": "1"})
        if is_transaction_conflict(exc):  # deadlock or serialization failure: rolled back, retry
            log.warning("transaction aborted by the database: %s", exc)
            return JSONResponse({"detail": TRANSACTION_CONFLICT_DETAIL}, status_code=503, headers={"Retry-After": "1"})
        log.exception("unhandled error", exc_info=exc)
        return PlainTextResponse("Internal Server Error", status_code=500)

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(DBAPIError, data_error)
    app.add_exception_handler(Exception, unhandled)


async def _run_check(name: str, check: ReadinessCheck, limit: float) -> tuple[str, bool]:
    try:
        return name, bool(await asyncio.wait_for(check(), limit))
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, exc)
        return name, False


def install_health(app: FastAPI, service: str, checks: dict[str, ReadinessCheck]) -> None:
    """`/healthz` (process alive), `/readyz` (dependencies answer), `/metrics` (Prometheus)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        results = dict(await asyncio.gather(*(_run_check(n, c, 2.0) for n, c in checks.items())))
        ready = all(results.values())
        body = {"status": "ready" if ready else "unavailable", "service": service, "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_service_app(
    service: str,
    *,
    signer: IdentitySigner,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    checks: dict[str, ReadinessCheck] | None = None,
    title: str | None = None,
    access: AccessLogSettings | None = None,
    **kwargs: Any,
) -> FastAPI:
    dependencies = [Depends(reject_non_finite_json), *kwargs.pop("dependencies", [])]
    app = FastAPI(title=title or f"Interloper {service}", lifespan=lifespan, dependencies=dependencies, **kwargs)
    app.state.signer = signer
    app.state.service = service
    install_error_handlers(app)
    install_health(app, service, checks if checks is not None else {})
    install_trailing_slash_alias(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestContextMiddleware, service=service, access=access)
    instrument_fastapi(app)  # server spans; nothing when tracing is off
    return app


# ---- identity dependencies -------------------------------------------------------------


async def get_identity(request: Request) -> Identity:
    """The caller as asserted by the gateway (verified here; missing -> anonymous)."""
    cached = request.scope.get("icp.identity")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    signer: IdentitySigner = request.app.state.signer
    identity = signer.verify(request.headers.get(IDENTITY_HEADER))
    request.scope["icp.identity"] = identity
    annotate_request(identity.org_id, request.path_params)  # on the request's span, when tracing
    return identity


async def authenticated(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
    return require_authenticated(identity)


def role(minimum: str) -> Callable[[Identity], Awaitable[Identity]]:
    # async: plain `def` dependencies would each cost a thread-pool hop per request.
    async def dependency(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
        return require_role(identity, minimum)

    dependency.__name__ = f"require_{minimum}"
    return dependency


def thread_pool_dependencies(app: FastAPI) -> set[str]:
    """The dependencies of `app`'s routes that FastAPI runs in its thread pool (plain `def`, sync
    generators): each costs a thread hand-over on every request (13-17 % of a service's CPU in
    the bench, issue 17). Services keep this empty (their tests check it)."""
    found: set[str] = set()
    pending = [route.dependant for route in app.routes if isinstance(route, APIRoute)]
    while pending:
        dependant = pending.pop()
        for sub in dependant.dependencies:
            call = sub.call
            target = call if inspect.isroutine(call) or inspect.isclass(call) else type(call).__call__
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                found.add(getattr(call, "__qualname__", repr(call)))
            pending.append(sub)
    return found


IdentityDep = Annotated[Identity, Depends(get_identity)]
AuthenticatedDep = Annotated[Identity, Depends(authenticated)]
ViewerDep = Annotated[Identity, Depends(role("viewer"))]
EditorDep = Annotated[Identity, Depends(role("editor"))]
AdminDep = Annotated[Identity, Depends(role("admin"))]


async def lifespan_noop(_: FastAPI) -> AsyncIterator[None]:
    yield
