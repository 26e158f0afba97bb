"""Running a service process: uvicorn (and optionally more coroutines, e.g. a gRPC server
or a worker loop) in one event loop, with clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)


def serve_http(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` until SIGINT/SIGTERM (the app's lifespan starts and stops everything else).

    X-Forwarded-* are trusted: services are only reachable from the gateway, the gateway only
    from Traefik (NetworkPolicies in Kubernetes)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
        # Longer than the gateway's pooled keep-alive (30 s), so the server never closes a
        # connection the gateway is about to reuse.
        timeout_keep_alive=75,
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
    )
    server = uvicorn.Server(config)
    log.info("listening on http://%s:%s", host, port)
    server.run()  # sets up uvloop (config.loop) before running the server


async def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """For processes without an HTTP API of their own: run `main(stop_event)`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)
