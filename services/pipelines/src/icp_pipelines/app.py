"""The pipelines service's processes: the API (HTTP + gRPC), the scheduler and the worker.

All three share the database; the scheduler and the worker serve only health on HTTP. The catalog
is imported once here (INTERLOPER_CATALOG); import errors are logged and reported by /readyz
(`checks.catalog` false, `catalog_errors` path -> error) without making the service unready."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from icp_common.forwarded import ForwardedHeadersMiddleware
from icp_common.identity import IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.streams import AUDIT, PIPELINES, REALTIME
from icp_common.web import ReadinessCheck, create_service_app

from .api import include_routes
from .background import BackgroundProcess, ProcessKind
from .catalog.loader import CatalogIndex, load_catalog
from .crypto import Cipher
from .db import MIGRATIONS_DIR, SERVICE, auditor, outbox_table
from .execution.metrics import queue_probe
from .models import load_models
from .rpc import start_grpc
from .settings import Settings

log = logging.getLogger(__name__)

STREAMS = [
    REALTIME,  # shared with the gateway, which follows it
    PIPELINES,  # the workers' commands
    AUDIT,  # audit entries, stored by identity
]


def _install_readyz(app: FastAPI, checks: dict[str, ReadinessCheck], catalog: CatalogIndex) -> None:
    """/readyz with the infrastructure checks plus the catalog's state (which never makes the
    process unready: a bad INTERLOPER_CATALOG entry is an operator's fix, the rest still works)."""
    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, APIRoute) and r.path == "/readyz")]

    async def run(name: str, check: ReadinessCheck) -> tuple[str, bool]:
        try:
            return name, bool(await asyncio.wait_for(check(), 2.0))
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            return name, False

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = dict(await asyncio.gather(*(run(n, c) for n, c in checks.items())))
        ready = all(results.values())
        body = {
            "status": ("ready" if catalog.ok else "degraded") if ready else "unavailable",
            "service": app.state.service,
            "checks": {**results, "catalog": catalog.ok},
            "catalog_errors": catalog.errors,
        }
        return JSONResponse(body, status_code=200 if ready else 503)


def create_app(settings: Settings, kind: ProcessKind = "api", *, resources: ServiceResources | None = None) -> FastAPI:
    """The app of one process. Without `resources` its lifespan starts the database (migrated),
    NATS, the outbox relay and (API) the gRPC server; with `resources` (tests) the caller owns them."""
    load_models()
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds, audience="pipelines")  # API, scheduler, worker
    catalog = load_catalog(settings.catalog)
    cipher = Cipher.from_settings(settings)
    owned = resources is None
    if resources is None:
        resources = ServiceResources(
            SERVICE,
            settings,
            migrations_dir=MIGRATIONS_DIR,
            outbox_table=outbox_table,
            streams=STREAMS,
            # The API publishes its own commits at once (a run's INSERT frame); the worker's and
            # scheduler's go to the leader through NOTIFY, folded (fewer relay batches per run).
            relay_wakes_on_commit=kind == "api",
        )
    held = resources
    if kind == "scheduler":  # one kind of process samples the run queue (cheap, index-only)
        held.probes["runs"] = queue_probe(lambda: held.engine)
    background = BackgroundProcess(kind, settings, catalog, cipher) if kind != "api" and owned else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        await held.start()
        server = None
        try:
            if kind == "api" and settings.grpc_port:
                assert held.sessions is not None
                server, app.state.grpc_port = await start_grpc(settings, held.sessions, catalog, cipher, secret, signer)
            if background is not None:
                await background.start(held)
            yield
        finally:
            if background is not None:
                await background.stop()
            if server is not None:
                await server.stop(grace=2)
            await held.stop()

    name = SERVICE if kind == "api" else f"{SERVICE}-{kind}"
    checks = held.checks()
    if background is not None:
        checks[kind] = background.ready
    app = create_service_app(name, signer=signer, lifespan=lifespan, checks=checks)
    _install_readyz(app, checks, catalog)
    app.state.settings = settings
    app.state.resources = held
    app.state.audit_denied = auditor.denied_hook(lambda: held.sessions)
    app.state.catalog = catalog
    app.state.cipher = cipher
    app.state.background = background
    if kind == "api":
        include_routes(app)
    app.add_middleware(ForwardedHeadersMiddleware)
    return app
