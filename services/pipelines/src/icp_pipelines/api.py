"""The URL tree of the pipelines service's public API (served under /api through the gateway).

Collections are declared with a trailing slash; FastAPI's redirect_slashes answers the slash-less
form with a 307 whose absolute Location carries the gateway's forwarded scheme and host."""

from __future__ import annotations

from fastapi import FastAPI

from .assets.routes import router as assets_router
from .backfills.routes import router as backfills_router
from .catalog.routes import router as catalog_router
from .destinations.routes import router as destinations_router
from .external.routes import router as external_router
from .jobs.routes import router as jobs_router
from .oauth.routes import router as oauth_router
from .resources.routes import router as resources_router
from .runs.logs import router as run_logs_router
from .runs.routes import router as runs_router
from .sources.routes import router as sources_router


def include_routes(app: FastAPI) -> None:
    for router in (
        catalog_router,
        resources_router,
        sources_router,
        destinations_router,
        assets_router,
        jobs_router,
        runs_router,
        run_logs_router,
        backfills_router,
        oauth_router,
        external_router,
    ):
        app.include_router(router)
