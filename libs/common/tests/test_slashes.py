"""Both spellings of a path are served directly (no 307), and the OpenAPI document stays as declared."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

from icp_common.identity import IdentitySigner
from icp_common.web import create_service_app

SIGNER = IdentitySigner(b"slash-tests")


def build_app() -> FastAPI:
    app = create_service_app("test", signer=SIGNER)
    runs = APIRouter(prefix="/api/runs")

    @runs.get("/")
    async def list_runs() -> list[str]:
        return ["r1"]

    @runs.post("/")
    async def create_run() -> dict[str, str]:
        return {"id": "r2"}

    @runs.get("/{run_id}")
    async def get_run(run_id: str) -> dict[str, str]:
        return {"id": run_id}

    orgs = APIRouter(prefix="/api/organisations")

    @orgs.get("")
    async def list_orgs() -> list[str]:
        return ["o1"]

    # Included after the app (and its middleware) was created, as every service does.
    app.include_router(runs)
    app.include_router(orgs)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc", follow_redirects=False)


async def test_collection_paths_answer_with_and_without_the_slash() -> None:
    async with client(build_app()) as c:
        for path in ("/api/runs", "/api/runs/", "/api/runs?limit=1"):
            r = await c.get(path)
            assert (r.status_code, r.json()) == (200, ["r1"]), path
        for path in ("/api/runs", "/api/runs/"):
            r = await c.post(path)
            assert (r.status_code, r.json()) == (200, {"id": "r2"}), path
        for path in ("/api/organisations", "/api/organisations/"):
            r = await c.get(path)
            assert (r.status_code, r.json()) == (200, ["o1"]), path
        r = await c.get("/api/runs/abc/")
        assert (r.status_code, r.json()) == (200, {"id": "abc"})


async def test_other_methods_and_unknown_paths_are_not_aliased() -> None:
    async with client(build_app()) as c:
        assert (await c.delete("/api/runs")).status_code == 405
        assert (await c.get("/api/nothing")).status_code == 404
        assert (await c.get("/api/nothing/")).status_code == 404


def test_openapi_lists_each_path_once_as_declared() -> None:
    paths = build_app().openapi()["paths"]
    assert "/api/runs/" in paths and "/api/runs" not in paths
    assert "/api/organisations" in paths and "/api/organisations/" not in paths


async def test_forwarded_headers_still_set_the_public_scheme_and_host() -> None:
    """What the slash redirect's Location relied on, kept for any absolute URL a service builds
    (the forwarded tests of the identity service used the redirect that no longer happens)."""
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    from icp_common.forwarded import ForwardedHeadersMiddleware

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(str(Request(scope).url))(scope, receive, send)

    app = ForwardedHeadersMiddleware(echo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal:8101") as c:
        public = await c.get("/x", headers={"x-forwarded-proto": "https", "x-forwarded-host": "app.example.com"})
        bogus = await c.get("/x", headers={"x-forwarded-proto": "gopher"})
    assert public.text == "https://app.example.com/x"
    assert bogus.text == "http://internal:8101/x"
