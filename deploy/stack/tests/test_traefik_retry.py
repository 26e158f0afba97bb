"""The edge's retries (deploy/traefik/dynamic.yml, as compose, Kubernetes and the local stack run
it) through a live Traefik: a gateway that dies with the request written to it makes Traefik
answer its own 502; a GET/HEAD is then sent again, any other method never (it may have been
processed)."""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from icp_stack.infra.process import ManagedProcess
from icp_stack.infra.traefik import TraefikProxy
from icp_stack.ports import free_ports

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class DyingGateway(socketserver.ThreadingTCPServer):
    """Answers /healthz and /api/health; for any other path, the first request of each
    (method, path) is read whole and its connection closed unanswered (a replica killed
    mid-request), later ones get 200. Every answer closes its connection, so Traefik never
    reuses one (Go's transport would itself resend a GET on a reused connection)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.seen: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()


class _Handler(socketserver.StreamRequestHandler):
    server: DyingGateway

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").split()
        if len(request_line) < 2:
            return
        method, path = request_line[0], request_line[1]
        length = 0
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            self.rfile.read(length)
        if path in ("/healthz", "/api/health"):
            self.wfile.write(OK)
            return
        with self.server.lock:
            self.server.seen[(method, path)] += 1
            first = self.server.seen[(method, path)] == 1
        if not first:
            self.wfile.write(OK)
        # First: return without answering; the connection closes.


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DyingGateway]]:
    tmp = tmp_path_factory.mktemp("edge-retry")
    upstream_port, web, ping = free_ports(3)
    gateway = DyingGateway(upstream_port)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    proxy = TraefikProxy(tmp / "traefik", web, ping, gateway_upstream=f"http://127.0.0.1:{upstream_port}")
    traefik = ManagedProcess(proxy.spec(), tmp / "traefik.log")
    try:
        traefik.start()
        yield proxy.url, gateway
    finally:
        traefik.stop()
        proxy.stop_fallback()
        gateway.shutdown()
        gateway.server_close()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_whose_gateway_died_mid_request_is_sent_again(edge: tuple[str, DyingGateway], method: str) -> None:
    url, gateway = edge
    response = httpx.request(method, f"{url}/api/pipelines/read-{method}", timeout=30)
    assert response.status_code == 200, response.text
    assert gateway.seen[(method, f"/api/pipelines/read-{method}")] == 2


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_a_write_whose_gateway_died_mid_request_is_never_sent_again(
    edge: tuple[str, DyingGateway], method: str
) -> None:
    url, gateway = edge
    path = f"/api/pipelines/write-{method}"
    response = httpx.request(method, f"{url}{path}", content=b'{"name": "x"}', timeout=30)
    # Traefik's own 502: the request may have been processed, the client decides.
    assert response.status_code == 502, response.text
    assert gateway.seen[(method, path)] == 1
