"""The notifications service's HTTP app and process wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from icp_common.identity import IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.web import create_service_app

from .db import MIGRATIONS_DIR, SERVICE, outbox_table
from .settings import Settings


def create_app(settings: Settings) -> FastAPI:
    signer = IdentitySigner(settings.require_secret(), settings.identity_ttl_seconds)
    resources = ServiceResources(SERVICE, settings, migrations_dir=MIGRATIONS_DIR, outbox_table=outbox_table)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        try:
            yield
        finally:
            await resources.stop()

    app = create_service_app(SERVICE, signer=signer, lifespan=lifespan, checks=resources.checks())
    app.state.settings = settings
    app.state.resources = resources
    return app
