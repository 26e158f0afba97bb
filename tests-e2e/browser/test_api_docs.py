"""/api/docs in a real browser with no network: Swagger UI renders the aggregated OpenAPI, and
nothing is loaded from another origin (conftest.py fails the test on any such request)."""

from __future__ import annotations

from playwright.sync_api import expect


def test_api_docs_render_offline(people) -> None:
    reader = people("reader")
    page = reader.page
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Interloper API")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations.first).to_be_visible()
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/api/organisations").first).to_be_visible()
    assert operations.count() > 20
    reader.snap("swagger-ui")
