"""A tiny stand-in for a service process (stdlib only), used by the launcher tests.

It serves /healthz, /readyz, /metrics, /env (its environment as JSON) and, like the gateway,
/api/health on INTERLOPER_HTTP_PORT; it also listens on INTERLOPER_GRPC_PORT when set.
FAKE_READY_DELAY delays readiness; FAKE_EXIT_CODE makes it exit at once with that code (only the
command named FAKE_FAIL_ONLY when that is set; FAKE_NAME is the command name given by the wrapper).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
READY_DELAY = float(os.environ.get("FAKE_READY_DELAY", "0"))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            ready = time.monotonic() - STARTED >= READY_DELAY
            self._json(200 if ready else 503, {"status": "ok" if ready else "starting"})
        elif path == "/metrics":
            self._json(200, {})
        elif path == "/env":
            self._json(200, {"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid()})
        elif path == "/api/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"detail": "Not Found"})


def mailcatcher(name: str) -> None:
    """`mailcatcher --host H --port P --dir D`: a listening socket that greets like SMTP."""
    args = sys.argv[2:]
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    port = int(args[args.index("--port") + 1])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{name} mailcatcher listening on {host}:{port}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"220 fake mail catcher\r\n")


def main() -> None:
    name = os.environ.get("FAKE_NAME") or os.path.basename(sys.argv[0])
    only = os.environ.get("FAKE_FAIL_ONLY")
    if os.environ.get("FAKE_EXIT_CODE") and (not only or only == name):
        print(f"{name}: failing on purpose", flush=True)
        sys.exit(int(os.environ["FAKE_EXIT_CODE"]))
    if sys.argv[1:2] == ["mailcatcher"]:
        mailcatcher(name)
        return
    host = os.environ.get("INTERLOPER_HTTP_HOST", "127.0.0.1")
    port = int(os.environ["INTERLOPER_HTTP_PORT"])
    server = ThreadingHTTPServer((host, port), Handler)
    if os.environ.get("INTERLOPER_GRPC_PORT"):
        grpc = socket.socket()
        grpc.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        grpc.bind((host, int(os.environ["INTERLOPER_GRPC_PORT"])))
        grpc.listen()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{name} {' '.join(sys.argv[1:])} listening on {host}:{port}", flush=True)
    server.serve_forever()
    print(f"{name} stopped", flush=True)


if __name__ == "__main__":
    main()
