"""Interactive API documentation: Swagger UI at /api/docs for the aggregated /api/openapi.json.

FastAPI's default page loads Swagger UI from a public CDN, which a self-hosted, air-gapped
install cannot reach. The files come from a pinned PyPI package instead (`fastapi-offline`,
which ships Swagger UI 5, needed for OpenAPI 3.1) and are served from our own origin."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

DOCS_PATH = "/api/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
# Only these files are served (no path from the request ever reaches the file system).
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
ASSET_CACHE = "public, max-age=86400"


def install_docs(app: FastAPI, openapi_url: str, title: str) -> None:
    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # No online validator: it would send the spec's URL to a public service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE})
