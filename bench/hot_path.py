"""CPU per request of the plumbing every service puts around a route (`create_service_app`: request
context, access log, metrics, body limit, strict JSON, the signed identity assertion), in one
process without network or database: the fixed cost of issue 17, measured apart from the noise of
a shared machine. Logging as the services configure it (JSON through the queue listener, to
/dev/null); the listener thread's CPU is counted.

    uv run python -m bench.hot_path [--requests 20000]

Compare two commits by putting the older `libs/common/src` first on PYTHONPATH."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from icp_common import logs
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.web import EditorDep, ViewerDep, create_service_app

SIGNER = IdentitySigner(b"hot-path-bench", audience="bench")
EDITOR = Identity(state="ok", user_id="u1", session_id="s1", org_id="o1", org_exists=True, role="editor")
BODY = b'{"name": "a source", "config": {"rows": 100, "ratio": 0.5, "tags": ["x", "y"]}, "enabled": true}'


class Thing(BaseModel):
    name: str
    config: dict[str, Any]
    enabled: bool


def settings_of(request: Request) -> str:
    """A plain `def` dependency, as `get_settings` was before issue 17: run in the thread pool."""
    return "settings"


async def settings_on_loop(request: Request) -> str:
    return "settings"


def build() -> Any:
    app = create_service_app("bench", signer=SIGNER)

    @app.get("/sync-dependency")
    async def read_sync(identity: ViewerDep, s: Annotated[str, Depends(settings_of)]) -> dict[str, str]:
        return {"id": "1", "name": "x"}

    @app.get("/async-dependency")
    async def read_async(identity: ViewerDep, s: Annotated[str, Depends(settings_on_loop)]) -> dict[str, str]:
        return {"id": "1", "name": "x"}

    @app.get("/things")
    async def read(identity: ViewerDep) -> dict[str, str]:
        return {"id": "1", "name": "x"}

    @app.post("/things")
    async def create(body: Thing, identity: EditorDep) -> dict[str, str]:
        return {"id": "1", "name": body.name}

    return app


async def one(app: Any, method: str, headers: list[tuple[bytes, bytes]], body: bytes, path: str) -> int:
    status = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(app: Any, method: str, path: str, requests: int) -> float:
    token = SIGNER.sign(EDITOR).encode()
    headers = [(b"host", b"svc"), (IDENTITY_HEADER.encode(), token), (b"x-request-id", b"bench-1")]
    body = b""
    if method == "POST":
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
        body = BODY
    for _ in range(200):  # warm-up
        assert await one(app, method, headers, body, path) == 200
    flush_logs()
    started = time.process_time()
    for _ in range(requests):
        await one(app, method, headers, body, path)
    flush_logs()  # the writer thread's backlog is part of the cost
    return time.process_time() - started


def flush_logs() -> None:
    listener = logs._listener
    if listener is not None:
        listener.stop()  # returns once every queued record is written
        listener.start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the log writer's target for the whole run
    logs.configure_logging("bench", "INFO", "json")
    app = build()
    for method, path in (
        ("GET", "/things"),
        ("POST", "/things"),
        ("GET", "/sync-dependency"),
        ("GET", "/async-dependency"),
    ):
        spent = asyncio.run(measure(app, method, path, args.requests))
        print(f"{method} {path}: {spent / args.requests * 1000:.3f} ms CPU per request", file=sys.stdout)


if __name__ == "__main__":
    main()
