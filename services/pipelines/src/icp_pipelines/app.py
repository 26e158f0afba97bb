"""The pipelines service's processes: the API (HTTP + gRPC), the scheduler and the worker.

All three share the database; the scheduler and the worker serve only health on HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_common.nats import StreamSpec
from icp_common.resources import ServiceResources
from icp_common.web import create_service_app

from .db import MIGRATIONS_DIR, SERVICE, outbox_table
from .settings import Settings

log = logging.getLogger(__name__)

Role = Literal["api", "scheduler", "worker"]
STREAMS = [
    StreamSpec("REALTIME", ["realtime.>"], max_age_seconds=3600),
    StreamSpec("PIPELINES", ["pipelines.>"], max_age_seconds=24 * 3600),
]


def create_app(settings: Settings, role: Role = "api") -> FastAPI:
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds)
    resources = ServiceResources(
        SERVICE,
        settings,
        migrations_dir=MIGRATIONS_DIR,
        outbox_table=outbox_table,
        streams=STREAMS if role == "api" else [],
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        grpc_server = None
        if role == "api" and settings.grpc_port:
            grpc_server, _, port = await start_server(
                settings.grpc_port, lambda server: None, secret=secret, signer=signer, host=settings.http_host
            )
            log.info("gRPC listening on %s:%s", settings.http_host, port)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=2)
            await resources.stop()

    name = SERVICE if role == "api" else f"{SERVICE}-{role}"
    app = create_service_app(name, signer=signer, lifespan=lifespan, checks=resources.checks())
    app.state.settings = settings
    app.state.resources = resources
    return app
