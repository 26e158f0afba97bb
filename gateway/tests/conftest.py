"""Gateway tests: the real gateway app served by uvicorn, in front of a real HTTP upstream
and a gRPC IdentityService implementation scripted by token (the identity service's own
behaviour is tested in its package and end to end)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_gateway.app import create_app
from icp_gateway.settings import Settings
from icp_protos.interloper.identity.v1 import identity_pb2, identity_pb2_grpc
from icp_stack.ports import free_port

SECRET = b"gateway-tests"
SIGNER = IdentitySigner(SECRET)
# Identity's ids are UUIDs (the identity events the realtime hub reads are typed contracts).
ORG1, ORG2, ORG9 = (f"10000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 9))
USER1, USER2, USER3, USER4 = (f"20000000-0000-4000-8000-00000000000{n}" for n in range(1, 5))
SESSION1, SESSION2, SESSION3, SESSION4 = (f"30000000-0000-4000-8000-00000000000{n}" for n in range(1, 5))
SESSION1B = "30000000-0000-4000-8000-0000000000b1"
TOKEN2 = "40000000-0000-4000-8000-000000000002"
TOKENS = {
    "good": identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK,
        user_id=USER1,
        email="ada@example.com",
        session_id=SESSION1,
        org_id=ORG1,
        org_exists=True,
        role="editor",
    ),
    "good2": identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK,
        user_id=USER1,
        session_id=SESSION1B,
        org_id=ORG1,
        org_exists=True,
        role="viewer",
    ),
    "org2": identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK, user_id=USER2, session_id=SESSION2, org_id=ORG2, org_exists=True, role="admin"
    ),
    "noorg": identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_OK, user_id=USER3, session_id=SESSION3),
    # An API token of USER2 (sent as `Authorization: Bearer ilp_org2`), acting in ORG2.
    "ilp_org2": identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK, user_id=USER2, org_id=ORG2, org_exists=True, role="editor", token_id=TOKEN2
    ),
    "removed": identity_pb2.AuthenticateResponse(
        state=identity_pb2.AUTH_STATE_OK, user_id=USER4, session_id=SESSION4, org_id=ORG1, org_exists=True, role=""
    ),
}


class ScriptedIdentity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Authenticate(self, request: Any, context: Any) -> Any:
        self.calls += 1
        return TOKENS.get(
            request.api_token or request.session_token,  # an API token is what identity resolves
            identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_INVALID),
        )


UPSTREAM_TEMPLATES = ("/api/sources/", "/api/sources/{source_id}", "/api/sources/stream", "/api/jobs/{job_id}/run")


@dataclass
class Upstream:
    """An HTTP service that records what reaches it."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            self.seen.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            identity = SIGNER.verify(request.headers.get("x-interloper-identity"))
            response = JSONResponse(
                {
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "url": str(request.url),
                    "identity": identity.to_dict(),
                    "body_length": len(body),
                }
            )
            response.set_cookie("a", "1")
            response.set_cookie("b", "2")
            return response

        async def stream(request: Request) -> Response:
            async def events() -> AsyncIterator[bytes]:
                try:
                    yield b"data: first\n\n"
                    await self.release.wait()
                    yield b"data: second\n\n"
                finally:
                    self.stream_closed.set()

            return StreamingResponse(events(), media_type="text/event-stream")

        async def openapi(_: Request) -> Response:  # what the gateway learns its metric labels from
            return JSONResponse({"paths": {p: {} for p in UPSTREAM_TEMPLATES}})

        return Starlette(
            routes=[
                Route("/openapi.json", openapi),
                Route("/api/sources/stream", stream),
                Route("/api/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )


async def serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    return server, task


@dataclass
class GatewayUnderTest:
    url: str
    upstream: Upstream
    identity: ScriptedIdentity
    nats_url: str


@pytest.fixture(scope="module")
async def gateway(nats_server: Any) -> AsyncIterator[GatewayUnderTest]:
    identity = ScriptedIdentity()

    def register(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)

    grpc_server, _, grpc_port = await start_server(0, register, secret=SECRET, signer=SIGNER)
    upstream = Upstream()
    upstream_port, gateway_port = free_port(), free_port()
    up_server, up_task = await serve(upstream.app(), upstream_port)
    settings = Settings(
        internal_secret=SECRET.decode(),
        public_url=f"http://127.0.0.1:{gateway_port}",
        nats={"url": nats_server.url},
        addresses={
            "identity_url": f"http://127.0.0.1:{upstream_port}",
            "identity_grpc_target": f"127.0.0.1:{grpc_port}",
            "pipelines_url": f"http://127.0.0.1:{upstream_port}",
            "pipelines_grpc_target": "",
            "agent_url": f"http://127.0.0.1:{free_port()}",  # nothing listens: a service that is down
        },
    )
    app = create_app(settings)
    gw_server, gw_task = await serve(app, gateway_port)
    under_test = GatewayUnderTest(f"http://127.0.0.1:{gateway_port}", upstream, identity, nats_server.url)
    under_test.hub = app.hub  # type: ignore[attr-defined]
    under_test.app = app  # type: ignore[attr-defined]
    yield under_test
    for server, task in ((gw_server, gw_task), (up_server, up_task)):
        server.should_exit = True
        await task
    await grpc_server.stop(grace=None)


def decode(response_text: str) -> dict[str, Any]:
    return json.loads(response_text)  # type: ignore[no-any-return]
