"""App-level behaviour: migrations match the models, trailing-slash redirects keep the method and
the public origin, health."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from icp_pipelines.models import load_models, metadata


async def test_migrations_match_the_models(engine):
    load_models()

    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_collections_redirect_with_method_and_public_origin(clients):
    headers = {"x-forwarded-proto": "https", "x-forwarded-host": "app.example.com"}
    for method, path in [
        ("GET", "/api/sources"),
        ("POST", "/api/sources"),
        ("GET", "/api/resources"),
        ("POST", "/api/resources"),
        ("GET", "/api/destinations"),
        ("POST", "/api/destinations"),
        ("GET", "/api/assets"),
        ("POST", "/api/assets"),
        ("GET", "/api/jobs"),
        ("POST", "/api/jobs"),
        ("GET", "/api/runs"),
        ("GET", "/api/backfills"),
        ("GET", "/api/catalog"),
    ]:
        r = await clients.editor.request(method, path, headers=headers, json={} if method == "POST" else None)
        assert r.status_code == 307, (method, path)
        assert r.headers["location"] == f"https://app.example.com{path}/"
    r = await clients.viewer.get("/api/runs?limit=5", headers=headers)
    assert r.headers["location"] == "https://app.example.com/api/runs/?limit=5"


async def test_health(clients):
    assert (await clients.anonymous.get("/healthz")).json() == {"status": "ok", "service": "pipelines"}
