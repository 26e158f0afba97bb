"""/api/docs through Traefik: Swagger UI for the aggregated OpenAPI, every file from our origin."""

from __future__ import annotations

import re

import httpx


def test_api_docs_serve_swagger_ui_from_our_origin(api: httpx.Client) -> None:
    page = api.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle" in html and "'/api/openapi.json'" in html
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", html), "a file loaded from another origin"
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = api.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    spec = api.get("/api/openapi.json")
    assert spec.status_code == 200 and "/api/organisations" in spec.json()["paths"]


def test_api_docs_serve_only_their_own_files(api: httpx.Client) -> None:
    for name in ("../../etc/passwd", "..%2F..%2Fcore.py", "index.html", "swagger-ui.js.map"):
        response = api.get(f"/api/docs/assets/{name}")
        assert response.status_code == 404, name
