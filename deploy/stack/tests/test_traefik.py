"""The Traefik configuration of deploy/traefik: static rendering, and a live Traefik in front of a
stand-in gateway (routing, headers, compression, SSE streaming, WebSocket)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
import yaml  # type: ignore[import-untyped]

from icp_stack.infra.process import ManagedProcess, ProcessSpec, http_ok
from icp_stack.infra.traefik import TraefikProxy, default_config_dir, render_static_config
from icp_stack.ports import free_ports

CONFIG = default_config_dir()


def test_static_config_rendering(tmp_path: Path) -> None:
    data = render_static_config(
        CONFIG / "traefik.yml",
        web_port=18080,
        ping_port=18082,
        dynamic_file=CONFIG / "dynamic.yml",
        access_log=tmp_path / "access.log",
    )
    assert data["entryPoints"]["web"]["address"] == "127.0.0.1:18080"
    assert data["ping"]["entryPoint"] == "traefik"
    assert data["entryPoints"]["traefik"]["address"] == "127.0.0.1:18082"
    assert data["providers"]["file"] == {"filename": str((CONFIG / "dynamic.yml").absolute()), "watch": True}
    assert data["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert "api" not in data  # no API, no dashboard
    assert data["accessLog"]["format"] == "json"
    assert data["accessLog"]["filePath"] == str(tmp_path / "access.log")
    assert data["entryPoints"]["web"]["transport"]["lifecycle"]["graceTimeOut"] == "1s"
    assert data["providers"]["providersThrottleDuration"] == "100ms"
    # The template itself (used as is by compose/Kubernetes) only differs in what we replace.
    template = yaml.safe_load((CONFIG / "traefik.yml").read_text())
    assert template["entryPoints"]["web"]["address"] == ":8080"
    assert template["providers"]["file"]["filename"] == "/etc/traefik/dynamic.yml"
    assert template["entryPoints"]["web"]["transport"]["respondingTimeouts"]["readTimeout"] == "0s"


def test_proxy_writes_the_static_file(tmp_path: Path) -> None:
    proxy = TraefikProxy(tmp_path, 18080, 18082, gateway_upstream="http://127.0.0.1:1")
    proxy.prepare()
    written = yaml.safe_load(proxy.static_file.read_text())
    assert written["entryPoints"]["web"]["address"] == "127.0.0.1:18080"
    spec = proxy.spec(env={})
    assert spec.env is not None and spec.env["INTERLOPER_GATEWAY_UPSTREAM"] == "http://127.0.0.1:1"
    assert spec.argv[-1] == f"--configFile={proxy.static_file}"


def test_dynamic_config(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (CONFIG / "dynamic.yml").read_text()
    assert '{{ env "INTERLOPER_GATEWAY_UPSTREAM"' in text
    rendered = text.replace(
        '{{ env "INTERLOPER_GATEWAY_UPSTREAM" | default "http://gateway:8000" }}', "http://127.0.0.1:1"
    )
    http = yaml.safe_load(rendered)["http"]
    router = http["routers"]["interloper"]
    assert router["rule"] == "PathPrefix(`/`)" and router["service"] == "gateway"
    assert set(router["middlewares"]) == {"compress", "security-headers", "rate-limit"}
    lb = http["services"]["gateway"]["loadBalancer"]
    assert lb["passHostHeader"] is True
    assert lb["responseForwarding"]["flushInterval"].startswith("-")
    assert lb["servers"] == [{"url": "http://127.0.0.1:1"}]
    assert "text/event-stream" in http["middlewares"]["compress"]["compress"]["excludedContentTypes"]
    assert http["middlewares"]["rate-limit"]["rateLimit"]["average"] >= 1000


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("edge")
    upstream_port, web, ping = free_ports(3)
    upstream = ManagedProcess(
        ProcessSpec(
            name="upstream",
            argv=[sys.executable, str(Path(__file__).with_name("upstream_app.py")), str(upstream_port)],
            ready=lambda: http_ok(f"http://127.0.0.1:{upstream_port}/api/health"),
            ready_timeout=30,
        ),
        tmp / "upstream.log",
    )
    upstream.start()
    proxy = TraefikProxy(tmp / "traefik", web, ping, gateway_upstream=f"http://127.0.0.1:{upstream_port}")
    traefik = ManagedProcess(proxy.spec(), tmp / "traefik.log")
    try:
        traefik.start()
        yield proxy.url
    finally:
        traefik.stop()
        upstream.stop()
    # The access log is JSON lines.
    first = (tmp / "traefik" / "access.log").read_text().splitlines()[0]
    assert json.loads(first)["RequestPath"]


def test_routes_everything_to_the_gateway_with_security_headers(edge: str) -> None:
    resp = httpx.get(f"{edge}/api/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert httpx.get(f"{edge}/anything/else").status_code == 404  # the gateway's 404, not Traefik's


def test_host_and_forwarded_headers_reach_the_gateway(edge: str) -> None:
    resp = httpx.get(f"{edge}/echo", headers={"Host": "interloper.example", "X_Interloper_Identity": "forged"})
    headers = resp.json()["headers"]
    assert headers["host"] == "interloper.example"
    assert headers["x-forwarded-host"] == "interloper.example"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert not any(name.replace("_", "-") == "x-interloper-identity" for name in headers)


def test_large_json_is_compressed(edge: str) -> None:
    resp = httpx.get(f"{edge}/big", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert len(resp.json()["items"]) == 500


def test_sse_is_neither_compressed_nor_buffered(edge: str) -> None:
    t0 = time.monotonic()
    with httpx.stream("GET", f"{edge}/sse", headers={"Accept-Encoding": "gzip, br, zstd"}, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in resp.headers
        lines = resp.iter_lines()
        assert next(lines) == "data: first"
        first_after = time.monotonic() - t0
        rest = list(lines)
    total = time.monotonic() - t0
    assert first_after < 1.0, f"first event after {first_after:.2f} s: buffered"
    assert total >= 1.4
    assert any(line.startswith("data: xxx") for line in rest)


async def test_websocket_passes_through(edge: str) -> None:
    url = edge.replace("http://", "ws://") + "/ws"
    async with websockets.connect(url) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo: hello"
        await ws.send("again")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo: again"
