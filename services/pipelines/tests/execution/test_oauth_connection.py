"""A connection made from the OAuth code exchange's answer runs (issue 15, item 1): the answer and
the resource API only ever hold `platform:oauth/google/client_secret`, and the worker hands the run
process the platform's real secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from icp_common.resources import ServiceResources
from icp_pipelines.app import create_app
from icp_pipelines.db import MIGRATIONS_DIR, SERVICE
from icp_pipelines.settings import Settings
from icp_testing.fake_providers import GOOD_CODE, FakeProviders, serve_in_thread

from ..conftest import SignedIdentityTransport
from .builders import post, run
from .conftest import OAUTH_APP, wait_run

pytestmark = pytest.mark.usefixtures("cluster")

PLATFORM_SECRET = OAUTH_APP["INTERLOPER_OAUTH_GOOGLE_CLIENT_SECRET"]


@pytest.fixture
async def oauth_app(
    exec_settings: Settings, exec_engine: AsyncEngine, exec_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[FastAPI]:
    """The API on the execution database with the platform's Google app at the fake provider."""
    with serve_in_thread(FakeProviders()) as fake:
        held = ServiceResources(SERVICE, exec_settings, migrations_dir=MIGRATIONS_DIR, use_nats=False)
        held.engine, held.sessions = exec_engine, exec_sessions
        app = create_app(exec_settings.model_copy(update={"oauth": fake.settings()}), resources=held)
        async with app.router.lifespan_context(app):
            yield app


async def test_a_connection_from_the_exchange_answer_runs_with_the_platform_secret(
    orgs: Any, oauth_app: FastAPI, tmp_path: Path
) -> None:
    org = await orgs()
    transport = SignedIdentityTransport(oauth_app, org.identity)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as editor:
        # What the web UI does: exchange the code, map the answer by the catalog's x-oauth.fields.
        r = await editor.post("/api/oauth/google", json={"code": GOOD_CODE})
        assert r.status_code == 200, r.text
        assert PLATFORM_SECRET not in r.text
        tokens = r.json()
        spec = (await editor.get("/api/specs")).json()["exec_oauth_connection"]
        fields = spec["config_schema"]["x-oauth"]["fields"]
        data = {field: tokens[key] for key, field in fields.items() if key in tokens}
        assert data["client_secret"] == "platform:oauth/google/client_secret"
        connection = await post(
            editor, "/api/resources/", {"kind": "connection", "key": "exec_oauth_connection", "name": "G", "data": data}
        )

    # The resource API never expands the reference, for editors either.
    stored = (await org.editor.get(f"/api/resources/{connection['id']}")).json()
    assert stored["data"] == data
    assert PLATFORM_SECRET not in json.dumps(stored)

    source = await post(
        org.editor,
        "/api/sources/",
        {
            "key": "exec_oauth_probe",
            "name": "Probe",
            "config": {"out_dir": str(tmp_path)},
            "resources": {"connection": connection["id"]},
        },
    )
    job = await post(org.editor, "/api/jobs/", {"name": "probe", "cron": "0 3 * * *", "source_ids": [source["id"]]})
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    received = json.loads((tmp_path / "received.json").read_text())
    assert received == {"client_id": "google-client-id", "client_secret": PLATFORM_SECRET}
