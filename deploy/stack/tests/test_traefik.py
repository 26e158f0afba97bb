"""The Traefik configuration of deploy/traefik: static rendering, and a live Traefik in front of a
stand-in gateway (routing, headers, compression, SSE streaming, WebSocket)."""

from __future__ import annotations

import asyncio
import json
import select
import socket
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
    # A bounded time to read a request (Slowloris), kept by the rendering; no write limit (SSE).
    timeouts = template["entryPoints"]["web"]["transport"]["respondingTimeouts"]
    assert timeouts["readTimeout"] == "30s" and timeouts["writeTimeout"] == "0s"
    assert data["entryPoints"]["web"]["transport"]["respondingTimeouts"] == timeouts
    # No request paths in Traefik's access log (invitation tokens, OAuth codes).
    assert template["accessLog"]["fields"]["names"] == {"RequestPath": "drop"}


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
    assert set(router["middlewares"]) == {"edge-marker", "compress", "security-headers", "rate-limit", "retry-reads"}
    for name, other in http["routers"].items():
        assert other["service"] in ("gateway", "gateway-unbuffered") and other["priority"] >= router["priority"], name
        assert {"edge-marker", "rate-limit", "security-headers"} <= set(other["middlewares"]), name
    bodies = http["routers"]["interloper-bodies"]
    assert bodies["middlewares"].index("json-errors") < bodies["middlewares"].index("body-limit")
    assert http["middlewares"]["body-limit"]["buffering"]["maxRequestBodyBytes"] == 1024 * 1024
    for failover in ("gateway", "gateway-unbuffered"):
        assert http["services"][failover]["failover"] == {"service": "gateway-servers", "fallback": "edge-fallback"}
    lb = http["services"]["gateway-servers"]["loadBalancer"]
    assert lb["healthCheck"]["path"] == "/healthz"
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
    # The access log is JSON lines, with the router but no path (paths can carry secrets).
    # (A readiness probe that came before the routers were loaded has no router: skipped.)
    lines = [json.loads(line) for line in (tmp / "traefik" / "access.log").read_text().splitlines()]
    routed = [line for line in lines if "RouterName" in line]
    assert routed and routed[0]["RouterName"].startswith("interloper")
    assert not any("RequestPath" in line for line in lines)


def test_fails_over_to_the_json_503_when_the_gateway_is_down(tmp_path: Path) -> None:
    """No gateway listening: Traefik answers with the edge fallback's JSON 503 (Retry-After,
    the client's request id), for reads and writes, never its own text/plain 502."""
    web, ping, dead = free_ports(3)
    proxy = TraefikProxy(tmp_path, web, ping, gateway_upstream=f"http://127.0.0.1:{dead}", health_path=None)
    traefik = ManagedProcess(proxy.spec(), tmp_path / "traefik.log")
    try:
        traefik.start()
        # Until its first health check a server counts as up (Traefik's own 502): wait for it.
        deadline = time.monotonic() + 20
        while httpx.get(f"{proxy.url}/api/health").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        for method in ("GET", "POST", "DELETE"):
            resp = httpx.request(method, f"{proxy.url}/api/anything", headers={"X-Request-Id": "req-1"}, timeout=10)
            assert resp.status_code == 503, (method, resp.text)
            assert resp.headers["content-type"] == "application/json"
            assert resp.json()["detail"].startswith("Service unavailable")
            assert int(resp.headers["retry-after"]) > 0 and resp.headers["x-request-id"] == "req-1"
    finally:
        traefik.stop()
        proxy.stop_fallback()


def test_routes_everything_to_the_gateway_with_security_headers(edge: str) -> None:
    resp = httpx.get(f"{edge}/api/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert httpx.get(f"{edge}/anything/else").status_code == 404  # the gateway's 404, not Traefik's


def test_host_and_forwarded_headers_reach_the_gateway(edge: str) -> None:
    resp = httpx.get(
        f"{edge}/echo",
        headers={"Host": "interloper.example", "X_Interloper_Identity": "forged", "X-Interloper-Edge": "no"},
    )
    headers = resp.json()["headers"]
    assert headers["x-interloper-edge"] == "public"  # the edge's mark, whatever the client sent
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


# ---- a read timeout shortened to 2 s (the real one is 30 s): Slowloris vs long-lived streams


READ_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def short_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Traefik with deploy/traefik's configuration, only its readTimeout shortened."""
    tmp = tmp_path_factory.mktemp("short-edge")
    config = tmp / "config"
    config.mkdir()
    static = yaml.safe_load((CONFIG / "traefik.yml").read_text())
    static["entryPoints"]["web"]["transport"]["respondingTimeouts"]["readTimeout"] = f"{READ_TIMEOUT:.0f}s"
    (config / "traefik.yml").write_text(yaml.safe_dump(static))
    (config / "dynamic.yml").write_text((CONFIG / "dynamic.yml").read_text())
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
    proxy = TraefikProxy(
        tmp / "traefik", web, ping, gateway_upstream=f"http://127.0.0.1:{upstream_port}", config_dir=config
    )
    traefik = ManagedProcess(proxy.spec(), tmp / "traefik.log")
    try:
        traefik.start()
        yield proxy.url
    finally:
        traefik.stop()
        upstream.stop()


def _dribble(url: str, head: bytes, drip: bytes) -> bool:
    """Send `head`, then `drip` every 0.5 s for 4 read timeouts; True if Traefik hung up first."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for _ in range(int(READ_TIMEOUT * 4 / 0.5)):
            time.sleep(0.5)
            try:
                sock.sendall(drip)
                if select.select([sock], [], [], 0)[0]:
                    while sock.recv(65536):  # an error answer, then the close
                        pass
                    return True
            except OSError:  # reset by Traefik
                return True
    return False


def test_a_client_dribbling_its_headers_is_cut(short_edge: str) -> None:
    assert _dribble(short_edge, b"GET /echo HTTP/1.1\r\nHost: edge\r\n", b"X-Slow: 1\r\n")


def test_a_client_dribbling_its_body_is_cut(short_edge: str) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: edge\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
    assert _dribble(short_edge, head, b"x")


def test_sse_outlives_the_read_timeout(short_edge: str) -> None:
    seconds = READ_TIMEOUT * 2
    with httpx.stream("GET", f"{short_edge}/slow-sse", params={"seconds": seconds}, timeout=10) as resp:
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert events == [f"data: {i}" for i in range(int(seconds * 2))] + ["data: end"]


async def test_websocket_outlives_the_read_timeout(short_edge: str) -> None:
    url = short_edge.replace("http://", "ws://") + "/ws"
    async with websockets.connect(url, ping_interval=None) as ws:
        for i in range(3):
            await asyncio.sleep(READ_TIMEOUT)  # silent longer than the read timeout, both ways
            await ws.send(f"m{i}")
            assert await asyncio.wait_for(ws.recv(), 5) == f"echo: m{i}"


def test_traefik_is_traced_only_with_an_otlp_endpoint(tmp_path: Path) -> None:
    from icp_stack.infra.traefik import tracing_config

    assert tracing_config({}) is None
    assert tracing_config({"INTERLOPER_TRACES_FILE": str(tmp_path / "t.jsonl")}) is None  # Traefik cannot write it
    assert tracing_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}) is None
    tracing = tracing_config(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert tracing == {
        "serviceName": "traefik",
        "sampleRate": 0.25,
        "otlp": {"http": {"endpoint": "http://collector:4318/v1/traces"}},
    }
    # No header captured (cookies, tokens); Traefik redacts query parameters by default.
    proxy = TraefikProxy(tmp_path, 18080, 18082, gateway_upstream="http://127.0.0.1:1", tracing=tracing)
    proxy.prepare()
    try:
        assert yaml.safe_load(proxy.static_file.read_text())["tracing"] == tracing
    finally:
        proxy.stop_fallback()
    untraced = TraefikProxy(tmp_path / "off", 18080, 18082, gateway_upstream="http://127.0.0.1:1")
    untraced.prepare()
    try:
        assert "tracing" not in yaml.safe_load(untraced.static_file.read_text())
    finally:
        untraced.stop_fallback()
