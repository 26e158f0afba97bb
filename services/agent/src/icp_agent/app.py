"""The agent service's HTTP app and process wiring."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from icp_common.identity import IdentitySigner
from icp_common.resources import ServiceResources
from icp_common.web import create_service_app

from .assistant.runtime import Assistant
from .db import MIGRATIONS_DIR, SERVICE
from .sessions.routes import router as sessions_router
from .settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, resources: ServiceResources | None = None) -> FastAPI:
    """`resources` may be given already started (tests share one engine); otherwise the lifespan
    creates/migrates the database and connects."""
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds, audience=SERVICE)
    owned = resources is None
    held = resources or ServiceResources(SERVICE, settings, migrations_dir=MIGRATIONS_DIR, use_nats=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await held.start()
        assert held.engine is not None
        assistant = Assistant(settings, held.engine, secret, signer)
        await assistant.start()
        app.state.assistant = assistant
        try:
            yield
        finally:
            await assistant.stop()
            if owned:
                await held.stop()

    app = create_service_app(SERVICE, signer=signer, lifespan=lifespan, checks=held.checks())
    app.state.settings = settings
    app.state.resources = held
    app.include_router(sessions_router)

    @app.get("/assistant", include_in_schema=False)
    async def assistant_status() -> dict[str, Any]:
        """What the chat runs on, for operators (the local stack's start-up table); not under /api."""
        problem = settings.model_problem()
        return {"model": settings.agent.model, "chat": problem is None, "problem": problem}

    return app
