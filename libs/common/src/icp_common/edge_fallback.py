"""The edge's answer while no gateway can: a JSON 503 with Retry-After and a request id.

Traefik routes to this tiny responder when every gateway server fails its health check (a
`failover` service in deploy/traefik/dynamic.yml), so clients see one error shape during a
gateway restart instead of Traefik's text/plain 502. It has no state and no dependencies: the
local stack runs it inside the launcher (always up while the stack runs); compose and
Kubernetes run `python -m icp_common.edge_fallback` next to Traefik.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .identity import REQUEST_ID_HEADER
from .web import request_id_of

RETRY_AFTER_SECONDS = 2
BODY = json.dumps({"detail": "Service unavailable: the gateway is restarting, retry shortly"}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "interloper-edge"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)

    def _answer(self, body: bool) -> None:
        headers = {k.lower().encode("latin-1"): v.encode("latin-1") for k, v in self.headers.items()}
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.send_header("Cache-Control", "no-store")
        self.send_header(REQUEST_ID_HEADER, request_id_of(headers))
        self.end_headers()
        if body:
            self.wfile.write(BODY)

    def _drain(self) -> None:
        # Read a body the client sent, so the connection stays usable (bounded by the edge's 1 MiB).
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) > 0:
            self.rfile.read(min(int(length), 1024 * 1024))

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_POST(self) -> None:
        self._drain()
        self._answer(body=True)

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass  # Traefik's access log has these requests


def bind(host: str, port: int = 0) -> ThreadingHTTPServer:
    """The responder listening on host:port (0: a free port, reserved from now on), not serving yet."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> None:
    """Serve `server` in a daemon thread (stop with .shutdown())."""
    threading.Thread(target=server.serve_forever, name="edge-fallback", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    bind(args.host, args.port).serve_forever()


if __name__ == "__main__":
    main()
