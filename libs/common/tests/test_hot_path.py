"""The per-request work every service does stays cheap without getting weaker (issue 17): no body
wrapper for a request without a body, a JSON body parsed once, an assertion verified once within
its life (its time window checked on every use)."""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from icp_common.errors import Unauthenticated
from icp_common.identity import Identity, IdentitySigner
from icp_common.web import BodyLimitMiddleware, create_service_app, thread_pool_dependencies

SIGNER = IdentitySigner(b"hot-path-tests", audience="test")
USER = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="editor", extra={"k": [1]})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    pass


async def _seen_receive(headers: list[tuple[bytes, bytes]], method: str = "GET") -> Receive:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)

    scope = {"type": "http", "method": method, "path": "/", "headers": headers, "http_version": "1.1"}
    await BodyLimitMiddleware(app, max_bytes=10)(scope, _receive, _send)
    return seen[0]


async def test_the_body_limit_wraps_only_a_body_it_must_count() -> None:
    assert await _seen_receive([]) is _receive  # no body (RFC 9112 6.3)
    assert await _seen_receive([(b"content-length", b"5")], "POST") is _receive  # framed by the server
    assert await _seen_receive([(b"transfer-encoding", b"chunked")], "POST") is not _receive
    assert await _seen_receive([(b"content-length", b"x")], "POST") is not _receive


class Body(BaseModel):
    name: str
    value: float


async def test_a_json_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_service_app("test", signer=SIGNER)

    @app.post("/things")
    async def create(body: Body) -> dict[str, Any]:
        return body.model_dump()

    parsed: list[Any] = []
    loads = json.loads

    def counting(document: Any, **kwargs: Any) -> Any:
        parsed.append(document)
        return loads(document, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as c:
        r = await c.post(
            "/things", content=b'{"name": "x", "value": 1.5}', headers={"content-type": "application/json"}
        )
        assert (r.status_code, r.json()) == (200, {"name": "x", "value": 1.5})
        assert parsed.count(b'{"name": "x", "value": 1.5}') == 1
        r = await c.post(
            "/things", content=b'{"name": "x", "value": NaN}', headers={"content-type": "application/json"}
        )
        assert r.status_code == 422  # still refused


def test_an_assertion_is_verified_once_within_its_life(monkeypatch: pytest.MonkeyPatch) -> None:
    token = SIGNER.sign(USER, now=1000)
    assert SIGNER.verify(token, now=1001) == USER
    macs: list[bytes] = []
    new = hmac.new

    def counting(key: bytes, msg: bytes, digestmod: Any) -> Any:
        macs.append(msg)
        return new(key, msg, digestmod)

    monkeypatch.setattr(hmac, "new", counting)
    assert SIGNER.verify(token, now=1002) == USER
    assert macs == []  # the signature was checked the first time
    # Its time window is still checked on every use, both ways.
    with pytest.raises(Unauthenticated, match="Expired"):
        SIGNER.verify(token, now=1000 + SIGNER.ttl_seconds + SIGNER.skew_seconds + 1)
    with pytest.raises(Unauthenticated, match="Expired"):
        SIGNER.verify(token, now=1000 - SIGNER.skew_seconds - 1)
    # Anything else than that exact token is verified in full.
    body, signature = token.rsplit(".", 1)
    with pytest.raises(Unauthenticated, match="Invalid"):
        SIGNER.verify(f"{body}.{signature[:-2]}AA", now=1001)
    with pytest.raises(Unauthenticated, match="Invalid"):
        IdentitySigner(b"hot-path-tests", audience="other").verify(token, now=1001)
    assert macs


def test_to_dict_copies_what_can_change() -> None:
    data = USER.to_dict()
    data["extra"]["k"].append(2)
    assert USER.extra == {"k": [1]}
    assert Identity.from_dict(USER.to_dict()) == USER


def plain(request: Request) -> str:
    return "x"


async def on_the_loop(request: Request) -> str:
    return "y"


def test_thread_pool_dependencies_are_found() -> None:
    app = create_service_app("test", signer=SIGNER)

    @app.get("/a")
    async def a(x: Annotated[str, Depends(plain)], y: Annotated[str, Depends(on_the_loop)]) -> None:
        pass

    assert thread_pool_dependencies(app) == {plain.__qualname__}


def test_an_assertion_is_minted_once_per_identity_audience_and_second(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = IdentitySigner(b"hot-path-tests")
    plain = Identity(state="ok", user_id="u1", org_id="o1", org_exists=True, role="viewer")
    first = signer.sign(plain, audience="pipelines", now=1000.2)
    macs: list[bytes] = []
    new = hmac.new

    def counting(key: bytes, msg: bytes, digestmod: Any) -> Any:
        macs.append(msg)
        return new(key, msg, digestmod)

    monkeypatch.setattr(hmac, "new", counting)
    assert signer.sign(plain, audience="pipelines", now=1000.9) == first
    assert macs == []
    # Another second, another audience, an equal but other object, an identity with `extra`: minted.
    later = signer.sign(plain, audience="pipelines", now=1001.0)
    other = signer.sign(plain, audience="identity", now=1000.5)
    twin = signer.sign(Identity(**{**plain.to_dict()}), audience="pipelines", now=1000.5)
    with_extra = Identity(state="ok", user_id="u1", extra={"k": 1})
    signer.sign(with_extra, audience="pipelines", now=1000.5)
    assert signer.sign(with_extra, audience="pipelines", now=1000.5)
    assert len(macs) == 5 and len({first, later, other}) == 3 and twin == first
    for token, audience in ((first, "pipelines"), (later, "pipelines"), (other, "identity")):
        assert IdentitySigner(b"hot-path-tests", audience=audience).verify(token, now=1001) == plain
