"""The service app factory: error mapping, identity dependencies, health and metrics."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from icp_common.errors import Conflict, NotFound
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.web import AuthenticatedDep, EditorDep, create_service_app

SIGNER = IdentitySigner(b"web-tests", audience="test")
EDITOR = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor")
VIEWER = Identity(state="ok", user_id="u2", org_id="o1", org_exists=True, role="viewer")


class Body(BaseModel):
    name: str


def build_app(ready: bool = True) -> FastAPI:
    async def check() -> bool:
        return ready

    app = create_service_app("test", signer=SIGNER, checks={"dep": check})

    @app.get("/me")
    async def me(identity: AuthenticatedDep) -> dict[str, str | None]:
        return {"user_id": identity.user_id}

    @app.post("/things")
    async def create(body: Body, identity: EditorDep) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("Thing not found")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Already there")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


def client(app: FastAPI, identity: Identity | None = None) -> httpx.AsyncClient:
    headers = {IDENTITY_HEADER: SIGNER.sign(identity)} if identity else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://svc", headers=headers)


async def test_domain_errors_map_to_status_and_detail() -> None:
    async with client(build_app()) as c:
        assert (await c.get("/missing")).json() == {"detail": "Thing not found"}
        response = await c.get("/conflict")
        assert (response.status_code, response.json()) == (409, {"detail": "Already there"})


async def test_unhandled_error_is_a_plain_500_without_internals() -> None:
    async with client(build_app()) as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"].startswith("text/plain")


async def test_identity_dependency_verifies_the_header() -> None:
    app = build_app()
    async with client(app, EDITOR) as c:
        assert (await c.get("/me")).json() == {"user_id": "u1"}
    async with client(app) as c:
        response = await c.get("/me")
        assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})
    async with client(app) as c:
        response = await c.get("/me", headers={IDENTITY_HEADER: IdentitySigner(b"other", audience="test").sign(EDITOR)})
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("identity", "body", "status", "detail"),
    [
        (None, b"{not json", 422, None),  # malformed JSON first, even unauthenticated
        (None, b'{"nope": 1}', 401, "Not authenticated"),  # then 401 before schema errors
        (VIEWER, b'{"nope": 1}', 403, "Requires editor role or higher"),  # then 403 before schema errors
        (EDITOR, b'{"nope": 1}', 422, None),
        (EDITOR, b'{"name": "x"}', 200, None),
    ],
)
async def test_error_precedence(identity: Identity | None, body: bytes, status: int, detail: str | None) -> None:
    async with client(build_app(), identity) as c:
        response = await c.post("/things", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    if detail:
        assert response.json() == {"detail": detail}


async def test_health_readiness_and_metrics() -> None:
    async with client(build_app(ready=True)) as c:
        assert (await c.get("/healthz")).json()["status"] == "ok"
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"dep": True}
        await c.get("/missing")
        metrics = (await c.get("/metrics")).text
        assert 'icp_http_requests_total{method="GET",route="/missing",service="test",status="404"}' in metrics
    async with client(build_app(ready=False)) as c:
        response = await c.get("/readyz")
        assert response.status_code == 503 and response.json()["status"] == "unavailable"


async def test_request_id_is_echoed_or_created() -> None:
    async with client(build_app()) as c:
        assert (await c.get("/healthz", headers={"x-request-id": "abc"})).headers["x-request-id"] == "abc"
        assert len((await c.get("/healthz")).headers["x-request-id"]) == 32
