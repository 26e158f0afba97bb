"""A stand-in gateway for the Traefik tests (starlette + uvicorn): JSON, a large body, SSE,
WebSocket echo and a request echo. Run: python upstream_app.py PORT."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def big(request: Request) -> JSONResponse:
    return JSONResponse({"items": [{"id": i, "name": f"item {i}"} for i in range(500)]})


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"headers": dict(request.headers), "path": request.url.path, "body_length": len(body)})


async def sse(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        yield "data: first\n\n"
        await asyncio.sleep(1.5)
        yield "data: " + "x" * 4000 + "\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def slow_sse(request: Request) -> StreamingResponse:
    """Events for `seconds` (longer than a test's read timeout), one every 0.5 s."""

    async def events() -> AsyncIterator[str]:
        for i in range(int(float(request.query_params["seconds"]) * 2)):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.5)
        yield "data: end\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive_text()
        await websocket.send_text(f"echo: {message}")


app = Starlette(
    routes=[
        Route("/api/health", health),
        Route("/healthz", health),  # Traefik's health check of the gateway servers
        Route("/big", big),
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/sse", sse),
        Route("/slow-sse", slow_sse),
        WebSocketRoute("/ws", ws),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
