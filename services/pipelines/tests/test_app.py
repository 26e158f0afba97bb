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


async def test_collections_answer_without_the_slash_as_with_it(clients):
    """Both spellings of every collection path are served directly, never a redirect (issue 23)."""
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
        body = {} if method == "POST" else None
        bare = await clients.editor.request(method, path, json=body)
        slashed = await clients.editor.request(method, f"{path}/", json=body)
        assert bare.status_code == slashed.status_code and bare.status_code in (200, 422), (method, path)
        assert bare.json() == slashed.json(), (method, path)
    r = await clients.viewer.get("/api/runs?limit=5")
    assert r.status_code == 200


async def test_health(clients):
    assert (await clients.anonymous.get("/healthz")).json() == {"status": "ok", "service": "pipelines"}
