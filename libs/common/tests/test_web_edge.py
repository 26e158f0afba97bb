"""What every service refuses or cleans up from its callers: oversized bodies (413 before or
while reading), made-up request ids, redirects naming the client's Host, secrets and control
characters in log lines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.logs import TextFormatter
from icp_common.settings import AccessLogSettings
from icp_common.web import MAX_BODY_BYTES, EditorDep, create_service_app, loggable_path

SIGNER = IdentitySigner(b"web-edge-tests", audience="test")
EDITOR = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor")


def headers() -> dict[str, str]:
    """Signed when used: an assertion signed at import had expired by the time CI ran the test."""
    return {IDENTITY_HEADER: SIGNER.sign(EDITOR), "Content-Type": "application/json"}


class Body(BaseModel):
    name: str


def build_app(access: AccessLogSettings | None = None) -> tuple[FastAPI, list[str]]:
    app = create_service_app("test", signer=SIGNER, access=access)
    created: list[str] = []

    @app.post("/things/")
    async def create(body: Body, identity: EditorDep) -> dict[str, str]:
        created.append(body.name)
        return {"name": body.name}

    @app.get("/go")
    async def go(request: Request, to: str = "") -> RedirectResponse:
        # An absolute URL built from the request, as Starlette's trailing-slash redirect does.
        return RedirectResponse(to or f"{request.base_url}things/?a=1")

    return app, created


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_declared_oversized_body_is_a_json_413_and_nothing_is_created() -> None:
    app, created = build_app()
    body = b'{"name": "x"}' + b" " * MAX_BODY_BYTES
    async with client(app) as c:
        response = await c.post("/things/", content=body, headers=headers())
    assert (response.status_code, response.json()) == (413, {"detail": "Content Too Large"})
    assert created == []


async def test_streamed_oversized_body_is_a_json_413_and_nothing_is_created() -> None:
    app, created = build_app()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "x"}'
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b" " * 65536

    async with client(app) as c:
        response = await c.post("/things/", content=chunks(), headers=headers())
    assert (response.status_code, response.json()) == (413, {"detail": "Content Too Large"})
    assert created == []


async def test_a_body_within_the_limit_is_accepted() -> None:
    app, created = build_app()
    body = b'{"name": "x"}' + b" " * (MAX_BODY_BYTES - 13)
    async with client(app) as c:
        response = await c.post("/things/", content=body, headers=headers())
    assert response.status_code == 200 and created == ["x"]


@pytest.mark.parametrize("given", ["a" * 129, "a" * 3000, "a b", "x\r\nSet-Cookie: a=b", "é"])
async def test_unsafe_request_ids_are_replaced(given: str) -> None:
    app, _ = build_app()
    async with client(app) as c:
        response = await c.get("/healthz", headers={"X-Request-Id": given.encode("utf-8")})
    minted = response.headers["x-request-id"]
    assert minted != given and len(minted) == 32 and minted.isalnum()


async def test_a_plain_request_id_is_kept() -> None:
    app, _ = build_app()
    async with client(app) as c:
        response = await c.get("/healthz", headers={"X-Request-Id": "A" * 128})
    assert response.headers["x-request-id"] == "A" * 128


@pytest.mark.parametrize("forwarded", [False, True])
async def test_redirect_location_never_names_the_clients_host(forwarded: bool) -> None:
    app, _ = build_app()
    headers = {"X-Forwarded-Host": "evil.example"} if forwarded else {"Host": "evil.example"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://evil.example") as c:
        response = await c.get("/go", headers=headers)
        elsewhere = await c.get("/go", params={"to": "https://accounts.example/auth?x=1"}, headers=headers)
    assert (response.status_code, response.headers["location"]) == (307, "/things/?a=1")
    assert elsewhere.headers["location"] == "https://accounts.example/auth?x=1"  # other hosts untouched


def test_invitation_tokens_are_redacted_from_logged_paths() -> None:
    assert loggable_path("/invite/tok_EN-123") == "/invite/<redacted>"
    assert loggable_path("/invite/tok/extra") == "/invite/<redacted>/extra"
    assert loggable_path("/api/organisations/invite") == "/api/organisations/invite"


async def test_the_access_log_line_has_no_invitation_token(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = build_app(AccessLogSettings(access_log=True))
    with caplog.at_level(logging.INFO, logger="icp.http"):
        async with client(app) as c:
            await c.get("/invite/secret-token-123")
    assert caplog.records and not any("secret-token-123" in r.getMessage() for r in caplog.records)
    assert any("/invite/<redacted>" in r.getMessage() for r in caplog.records)


def test_text_log_lines_cannot_be_forged_by_control_characters() -> None:
    path = "/x\n2026-01-01 00:00:00,000 INFO    icp.http: GET /admin -> 200\r\x1b[2J"
    record = logging.LogRecord("icp.http", logging.INFO, __file__, 1, "%s %s -> %s", ("GET", path, 404), None)
    line = TextFormatter("svc").format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "/x\\n2026-01-01" in line and "\\x1b[2J" in line
