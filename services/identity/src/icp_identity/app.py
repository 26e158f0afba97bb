"""The identity service's HTTP app and process wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from icp_common.forwarded import ForwardedHeadersMiddleware
from icp_common.identity import IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.streams import AUDIT, AUDIT_DURABLE, IDENTITY
from icp_common.web import create_service_app

from .api import include_routes
from .audit.consumer import AuditConsumer
from .audit.recorder import record_denied
from .db import MIGRATIONS_DIR, SERVICE, load_models, outbox_table
from .rpc import start_grpc
from .settings import Settings

STREAMS = [IDENTITY, AUDIT]


def create_app(settings: Settings, *, resources: ServiceResources | None = None) -> FastAPI:
    """The identity app. Without `resources` its lifespan starts the database (migrated), NATS,
    the outbox relay and the gRPC server (when grpc_port is set); with `resources` (tests) the
    caller owns them and the lifespan starts nothing."""
    load_models()
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds, audience=SERVICE)
    owned = resources is None
    if resources is None:
        resources = ServiceResources(
            SERVICE,
            settings,
            migrations_dir=MIGRATIONS_DIR,
            outbox_table=outbox_table,
            streams=STREAMS,
            consumers=[(AUDIT.name, AUDIT_DURABLE.name)],  # its lag in /metrics
        )
    held = resources

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        await held.start()
        server = None
        audit = None
        try:
            if held.nc is not None and held.sessions is not None:
                audit = AuditConsumer(held.nc, held.sessions, settings.audit_retention_days)
                await audit.start()
            if settings.grpc_port:
                assert held.sessions is not None
                server, app.state.grpc_port = await start_grpc(settings, held.sessions, secret, signer)
            yield
        finally:
            if server is not None:
                await server.stop(grace=2)
            if audit is not None:
                await audit.stop()
            await held.stop()

    app = create_service_app(SERVICE, signer=signer, lifespan=lifespan, checks=held.checks())
    app.state.settings = settings
    app.state.resources = held
    app.state.audit_denied = record_denied
    include_routes(app, settings)
    app.add_middleware(ForwardedHeadersMiddleware)
    return app
