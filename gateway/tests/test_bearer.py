"""`Authorization: Bearer ilp_...` (issue 18.2): an API token beats the cookie, is not subject to
the cookie CSRF check, stays at the edge, works on the realtime streams, and its cached identity
is dropped by `identity.token.revoked` and by its owner's removal. A bearer value that is not an
API token is no credential at all."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from icp_common import contracts
from icp_common.identity import Identity
from icp_gateway.authcache import AuthCache
from icp_gateway.authn import bearer_token

from .conftest import ORG2, SESSION2, TOKEN2, USER1, USER2, GatewayUnderTest
from .test_authcache import _event, _event_drops

BEARER = {"authorization": "Bearer ilp_org2"}


def test_only_an_ilp_bearer_value_is_a_token() -> None:
    assert bearer_token("Bearer ilp_abc") == "ilp_abc"
    assert bearer_token("bearer   ilp_abc ") == "ilp_abc"
    for value in (None, "", "Bearer", "Bearer ", "Bearer abc", "Basic ilp_abc", "ilp_abc", "Bearer eyJhbGciOi"):
        assert bearer_token(value) is None


async def seen(client: httpx.AsyncClient, method: str = "GET", **headers: str) -> httpx.Response:
    return await client.request(method, "/api/sources/", headers=headers)


async def test_the_bearer_token_beats_the_cookie(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        both = (await seen(client, cookie="session_token=good", **BEARER)).json()["identity"]
        alone = (await seen(client, **BEARER)).json()["identity"]
    for identity in (both, alone):
        assert (identity["state"], identity["user_id"], identity["org_id"], identity["token_id"]) == (
            "ok",
            USER2,
            ORG2,
            TOKEN2,
        )
        assert identity["session_id"] is None


async def test_a_bearer_value_that_is_not_an_api_token_is_absent(gateway: GatewayUnderTest) -> None:
    before = gateway.identity.calls
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        anonymous = (await seen(client, authorization="Bearer good")).json()["identity"]
        assert anonymous["state"] == "anonymous" and gateway.identity.calls == before  # nothing asked
        with_cookie = (await seen(client, authorization="Bearer org2", cookie="session_token=good")).json()
    assert (with_cookie["identity"]["user_id"], with_cookie["identity"]["token_id"]) == (USER1, None)


async def test_an_unknown_api_token_is_invalid_even_with_a_good_cookie(gateway: GatewayUnderTest) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await seen(client, authorization="Bearer ilp_unknown", cookie="session_token=good")
    # Marked as a token's refusal: services answer 401 "Invalid or expired token".
    assert (r.json()["identity"]["state"], r.json()["identity"]["token_id"]) == ("invalid", "")


async def test_bearer_writes_skip_the_cookie_csrf_check_and_the_secret_stays_at_the_edge(
    gateway: GatewayUnderTest,
) -> None:
    evil = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        refused = await seen(client, "POST", cookie="session_token=good", **evil)
        allowed = await seen(client, "POST", cookie="session_token=good", **evil, **BEARER)
        not_a_token = await seen(client, "POST", cookie="session_token=good", authorization="Bearer x", **evil)
    assert (refused.status_code, not_a_token.status_code) == (403, 403)
    assert allowed.status_code == 200 and allowed.json()["identity"]["token_id"] == TOKEN2
    assert "authorization" not in gateway.upstream.seen[-1]["headers"]


async def test_realtime_streams_accept_the_bearer_token(gateway: GatewayUnderTest) -> None:
    url = gateway.url.replace("http://", "ws://") + "/api/ws"
    hub: Any = gateway.hub  # type: ignore[attr-defined]
    async with connect(url, additional_headers={"Authorization": "Bearer ilp_org2"}, open_timeout=5) as socket:
        async with asyncio.timeout(5):
            while not any(c.session_id == f"token:{TOKEN2}" for c in hub.clients.get(ORG2, ())):
                await asyncio.sleep(0.02)
        await socket.close()
    with pytest.raises(Exception):  # noqa: B017 - the handshake is refused (HTTP 403)
        async with connect(url, additional_headers={"Authorization": "Bearer ilp_unknown"}, open_timeout=5):
            pass
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        async with client.stream("GET", "/api/events/stream", headers=BEARER) as stream:
            assert stream.status_code == 200
            assert (await anext(stream.aiter_bytes())).startswith(b"retry:")
        refused = await client.get("/api/events/stream", headers={"authorization": "Bearer ilp_unknown"})
    assert refused.status_code == 401


# ---- the cache --------------------------------------------------------------------------------

U1, U2, T1, T2, O1 = (str(uuid.uuid4()) for _ in range(5))


def _tokens() -> AuthCache:
    cache = AuthCache(60.0, 100)
    token = Identity(state="ok", user_id=U1, org_id=O1, org_exists=True, role="editor")
    cache.put(b"a", Identity(**{**token.to_dict(), "token_id": T1}), 0)  # U1's token
    cache.put(b"b", Identity(**{**token.to_dict(), "token_id": T2}), 0)  # another of U1's
    cache.put(b"c", Identity(**{**token.to_dict(), "user_id": T1 + "x", "token_id": T1 + "x"}), 0)
    cache.put(b"d", Identity(state="ok", user_id=U2, session_id=str(uuid.uuid4()), org_id=O1, role="viewer"), 0)
    return cache


@pytest.mark.parametrize(
    ("subject", "payload", "dropped"),
    [
        (
            contracts.TOKEN_REVOKED,
            _event(contracts.TokenRevoked(event_id=uuid.uuid4(), org_id=uuid.UUID(O1), token_id=uuid.UUID(T1))),
            {b"a"},
        ),
        (
            contracts.MEMBERSHIP_REMOVED,  # the owner leaves: every token of theirs there
            _event(contracts.MembershipRemoved(event_id=uuid.uuid4(), org_id=uuid.UUID(O1), user_id=uuid.UUID(U1))),
            {b"a", b"b"},
        ),
        (contracts.TOKEN_REVOKED, json.dumps({"event_id": "forged"}).encode(), {b"a", b"b", b"c", b"d"}),
    ],
    ids=["token-revoked", "owner-removed", "malformed"],
)
async def test_token_events_drop_their_entries(
    nats_server: Any, subject: str, payload: bytes, dropped: set[bytes]
) -> None:
    assert await _event_drops(nats_server.url, subject, payload, _tokens()) == dropped


async def test_a_revoked_tokens_socket_is_closed(gateway: GatewayUnderTest) -> None:
    """identity.token.revoked closes that token's streams (sessions of its owner stay)."""
    url = gateway.url.replace("http://", "ws://") + "/api/ws"
    hub: Any = gateway.hub  # type: ignore[attr-defined]
    nc = await nats.connect(gateway.nats_url)
    try:
        async with (
            connect(url, additional_headers={"Authorization": "Bearer ilp_org2"}, open_timeout=5) as by_token,
            connect(url, additional_headers={"Cookie": "session_token=org2"}, open_timeout=5) as by_session,
        ):
            async with asyncio.timeout(5):
                while len(hub.clients.get(ORG2, ())) < 2:
                    await asyncio.sleep(0.02)
            event = contracts.TokenRevoked(event_id=uuid.uuid4(), org_id=uuid.UUID(ORG2), token_id=uuid.UUID(TOKEN2))
            await nc.publish(contracts.TOKEN_REVOKED, _event(event))
            await nc.flush()
            with pytest.raises(ConnectionClosed) as caught:
                await asyncio.wait_for(by_token.recv(), 5.0)
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 4401
            # The event was handled: the owner's session stream is still open.
            assert [c.close_code for c in hub.clients.get(ORG2, ()) if c.session_id == SESSION2] == [None]
            assert by_session.close_code is None
    finally:
        await nc.close()
