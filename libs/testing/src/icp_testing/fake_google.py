"""A fake Google OAuth 2.0 server (authorize, token, userinfo) for tests and local runs.

Point AuthSettings.google_auth_url/token_url/userinfo_url at `FakeGoogle.url + "/auth" |
"/token" | "/userinfo"`. Register what a code signs in as with `fake.add_code(code, userinfo)`;
`/auth` auto-consents and redirects back with `fake.default_code` (or `?login_hint=<code>`).
`fake.mode` makes the provider fail in the ways the identity service must handle.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

Mode = Literal["ok", "token_error", "token_not_json", "no_access_token", "userinfo_error", "incomplete_userinfo"]


@dataclass
class FakeGoogle:
    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"
    mode: Mode = "ok"
    default_code: str = "fake-code"
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    userinfo_requests: list[str] = field(default_factory=list)
    url: str = ""

    def add_code(self, code: str, userinfo: dict[str, Any]) -> str:
        self.codes[code] = userinfo
        return code

    def reset(self) -> None:
        self.mode = "ok"
        self.codes.clear()
        self.token_requests.clear()
        self.userinfo_requests.clear()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/auth")
        async def authorize(request: Request) -> Response:
            params = request.query_params
            if params.get("client_id") != self.client_id or not params.get("redirect_uri"):
                return PlainTextResponse("invalid_client", status_code=400)
            code = params.get("login_hint") or self.default_code
            query = urlencode({"code": code, "state": params.get("state", "")})
            return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

        @app.post("/token")
        async def token(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            self.token_requests.append(form)
            if self.mode == "token_error":
                return JSONResponse({"error": "server_error"}, status_code=500)
            if self.mode == "token_not_json":
                return PlainTextResponse("not json", status_code=200)
            valid = (
                form.get("client_id") == self.client_id
                and form.get("client_secret") == self.client_secret
                and form.get("grant_type") == "authorization_code"
                and form.get("code") in self.codes
            )
            if not valid:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if self.mode == "no_access_token":
                return JSONResponse({"token_type": "Bearer", "expires_in": 3599})
            return JSONResponse({"access_token": f"at-{form['code']}", "token_type": "Bearer", "expires_in": 3599})

        @app.get("/userinfo")
        async def userinfo(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            self.userinfo_requests.append(auth)
            code = auth.removeprefix("Bearer at-") if auth.startswith("Bearer at-") else None
            if self.mode == "userinfo_error" or code not in self.codes:
                return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status_code=401)
            info = dict(self.codes[code])
            if self.mode == "incomplete_userinfo":
                info.pop("email", None)
            return JSONResponse(info)

        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1") -> AsyncIterator[FakeGoogle]:
        """Serve on a free port in the running event loop; sets `self.url`."""
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(self.app(), host=host, port=port, log_config=None, lifespan="off", access_log=False)
        )
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
                await asyncio.sleep(0.01)
        self.url = f"http://{host}:{port}"
        try:
            yield self
        finally:
            server.should_exit = True
            await task


@contextmanager
def serve_in_thread(fake: FakeGoogle, host: str = "127.0.0.1") -> Iterator[FakeGoogle]:
    """Serve `fake` from a background thread with its own event loop (for synchronous tests, and
    for servers in other processes that call it while the test blocks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host=host, port=port, log_config=None, lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="fake-google", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake Google server did not start")
        time.sleep(0.01)
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def userinfo(google_id: str, email: str, name: str | None = None, picture: str | None = None) -> dict[str, Any]:
    """A userinfo body as Google's v2 endpoint returns it."""
    info: dict[str, Any] = {"id": google_id, "email": email, "verified_email": True}
    if name is not None:
        info["name"] = name
    if picture is not None:
        info["picture"] = picture
    return info
