"""Which requests a service logs (issue 17): by default only failed (5xx) and slow ones, every
request with INTERLOPER_ACCESS_LOG=true; the request metrics count every request either way."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from icp_common.identity import IdentitySigner
from icp_common.settings import AccessLogSettings
from icp_common.web import create_service_app

SIGNER = IdentitySigner(b"access-log-tests", audience="test")


def build_app(access: AccessLogSettings | None = None) -> FastAPI:
    app = create_service_app("test", signer=SIGNER, access=access)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("boom")

    return app


async def _get(app: FastAPI, *paths: str) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        for path in paths:
            await c.get(path)


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "icp.http" and " -> " in r.getMessage()]


async def test_by_default_only_failed_requests_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = build_app(AccessLogSettings())
    with caplog.at_level(logging.INFO, logger="icp.http"):
        await _get(app, "/ok", "/missing", "/boom")
    lines = _lines(caplog)
    assert [level for level, _ in lines] == [logging.WARNING]
    assert lines[0][1].startswith("GET /boom -> 500 in ")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as c:
        metrics = (await c.get("/metrics")).text
    # Not logged, still counted.
    assert 'icp_http_requests_total{method="GET",route="/ok",service="test",status="200"}' in metrics
    assert 'icp_http_requests_total{method="GET",route="unmatched",service="test",status="404"}' in metrics


async def test_quiet_requests_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="icp.http"):
        await _get(build_app(AccessLogSettings()), "/ok")
    assert [level for level, _ in _lines(caplog)] == [logging.DEBUG]


async def test_slow_requests_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="icp.http"):
        await _get(build_app(AccessLogSettings(slow_request_ms=0)), "/ok")  # every request is "slow"
    lines = _lines(caplog)
    assert len(lines) == 1 and lines[0][0] == logging.WARNING and lines[0][1].startswith("GET /ok -> 200 in ")


async def test_the_full_access_log_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INTERLOPER_ACCESS_LOG", "true")
    with caplog.at_level(logging.INFO, logger="icp.http"):
        await _get(build_app(), "/ok", "/missing")  # the settings read from the environment
    assert [(level, msg.split(" in ")[0]) for level, msg in _lines(caplog)] == [
        (logging.INFO, "GET /ok -> 200"),
        (logging.INFO, "GET /missing -> 404"),
    ]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AccessLogSettings().access_log is False and AccessLogSettings().slow_request_ms == 500
    monkeypatch.setenv("INTERLOPER_SLOW_REQUEST_MS", "250")
    assert AccessLogSettings().slow_request_ms == 250


async def test_every_request_is_counted() -> None:
    from prometheus_client import REGISTRY

    labels = {"service": "counted", "method": "GET", "route": "/ok", "status": "200"}
    before = REGISTRY.get_sample_value("icp_http_requests_total", labels) or 0.0
    app = create_service_app("counted", signer=SIGNER)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    await _get(app, "/ok", "/ok", "/ok")
    assert REGISTRY.get_sample_value("icp_http_requests_total", labels) == before + 3
    latency = {k: v for k, v in labels.items() if k != "status"}
    assert REGISTRY.get_sample_value("icp_http_request_duration_seconds_count", latency) == 3
