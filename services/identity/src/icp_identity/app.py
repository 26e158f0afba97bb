"""The identity service's HTTP app and process wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from icp_common.identity import IdentitySigner
from icp_common.nats import StreamSpec
from icp_common.resources import ServiceResources
from icp_common.web import create_service_app

from .db import MIGRATIONS_DIR, SERVICE, outbox_table
from .rpc import start_grpc
from .settings import Settings

STREAMS = [StreamSpec("IDENTITY", ["identity.>"], max_age_seconds=7 * 24 * 3600)]


def create_app(settings: Settings) -> FastAPI:
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds)
    resources = ServiceResources(
        SERVICE, settings, migrations_dir=MIGRATIONS_DIR, outbox_table=outbox_table, streams=STREAMS
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        server = await start_grpc(settings, resources, secret, signer)
        try:
            yield
        finally:
            await server.stop(grace=2)
            await resources.stop()

    app = create_service_app(SERVICE, signer=signer, lifespan=lifespan, checks=resources.checks())
    app.state.settings = settings
    app.state.resources = resources
    return app
