"""The gateway's session cache: TTL, size bound, the session's own expiry, invalidation by each
identity event, the fence after a successful identity write, and no cache at TTL 0.
(Two gateway replicas in front of the real identity service: tests-e2e/test_auth_cache.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import nats
import pytest

from icp_common import contracts
from icp_common.grpc import start_server
from icp_common.identity import Identity
from icp_gateway.app import create_app
from icp_gateway.authcache import AuthCache, token_key
from icp_gateway.authn import fence_on_success
from icp_gateway.settings import Settings
from icp_protos.interloper.identity.v1 import identity_pb2, identity_pb2_grpc

from .conftest import ORG1, SECRET, SESSION1, SIGNER, TOKENS, USER1, USER4, Upstream, free_port, serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ok(user: str = "u1", session: str = "s1", org: str | None = "o1", role: str = "editor") -> Identity:
    return Identity(state="ok", user_id=user, session_id=session, org_id=org, org_exists=org is not None, role=role)


# ---- the cache alone ----------------------------------------------------------------------------


def test_an_answer_is_kept_for_the_ttl_only() -> None:
    clock = Clock()
    cache = AuthCache(5.0, 100, clock)
    cache.put(b"k", ok(), cache.generation)
    clock.now += 4.9
    assert cache.get(b"k") == ok()
    clock.now += 0.1
    assert cache.get(b"k") is None and len(cache) == 0


def test_never_past_the_sessions_own_expiry() -> None:
    clock = Clock()
    cache = AuthCache(5.0, 100, clock)
    cache.put(b"k", ok(), cache.generation, expires_in=1.0)
    clock.now += 1.0
    assert cache.get(b"k") is None
    cache.put(b"k", ok(), cache.generation, expires_in=0.0)  # expired as identity answered
    assert len(cache) == 0


def test_the_size_is_bounded_least_recently_used_first() -> None:
    cache = AuthCache(5.0, 2, Clock())
    cache.put(b"a", ok("a"), cache.generation)
    cache.put(b"b", ok("b"), cache.generation)
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"c", ok("c"), cache.generation)
    assert len(cache) == 2 and cache.get(b"b") is None
    assert cache.get(b"a") is not None and cache.get(b"c") is not None


@pytest.mark.parametrize("answer", [Identity(state="invalid"), Identity.anonymous()])
def test_refusals_are_not_kept_and_end_what_was(answer: Identity) -> None:
    cache = AuthCache(5.0, 100, Clock())
    cache.put(b"k", ok(), cache.generation)
    cache.put(b"k", answer, cache.generation)  # a fresh answer (the realtime re-check)
    assert cache.get(b"k") is None and len(cache) == 0


def test_an_answer_older_than_an_invalidation_is_not_kept() -> None:
    """An Authenticate call in flight while entries were dropped may predate the change."""
    cache = AuthCache(5.0, 100, Clock())
    asked_at = cache.generation
    cache.drop_where(lambda i: i.user_id == "u1")  # the event arrives while identity answers
    cache.put(b"k", ok(), asked_at)
    assert cache.get(b"k") is None


def test_ttl_zero_keeps_nothing() -> None:
    cache = AuthCache(0.0, 100, Clock())
    assert not cache.enabled
    cache.put(b"k", ok(), cache.generation)
    assert cache.get(b"k") is None


def test_the_fence_drops_the_callers_user_and_organisation() -> None:
    cache = AuthCache(5.0, 100, Clock())
    entries = {
        b"own": ok("u1", "s1", "o1"),
        b"own-other-device": ok("u1", "s2", "o2"),
        b"colleague": ok("u2", "s3", "o1"),
        b"stranger": ok("u3", "s4", "o2"),
    }
    for key, identity in entries.items():
        cache.put(key, identity, cache.generation)
    cache.fence(ok("u1", "s1", "o1"))
    assert [k for k in entries if cache.get(k) is not None] == [b"stranger"]


def test_keys_are_digests_not_tokens() -> None:
    key = token_key("secret-token")
    assert b"secret-token" not in key and len(key) == 20 and key == token_key("secret-token")


async def test_the_fence_runs_before_a_2xx_answer_starts_and_only_then() -> None:
    order: list[str] = []

    async def send(message: Any) -> None:
        order.append(f"{message['type']}:{message.get('status', '')}")

    for status in (200, 204, 302, 403, 500):
        fenced = fence_on_success(send, lambda s=status: order.append(f"fence:{s}"))  # type: ignore[misc]
        await fenced({"type": "http.response.start", "status": status, "headers": []})
        await fenced({"type": "http.response.body", "body": b""})
    assert order == [
        "fence:200",
        "http.response.start:200",
        "http.response.body:",
        "fence:204",
        "http.response.start:204",
        "http.response.body:",
        *[x for s in (302, 403, 500) for x in (f"http.response.start:{s}", "http.response.body:")],
    ]


# ---- identity events ----------------------------------------------------------------------------


async def _event_drops(nats_url: str, subject: str, payload: bytes, cache: AuthCache) -> set[bytes]:
    """Publish one event to a cache following NATS; the keys it dropped."""
    nc = await nats.connect(nats_url)
    try:
        await cache.follow(nc)
        before = {k for k in (b"a", b"b", b"c", b"d") if cache.get(k) is not None}
        await nc.publish(subject, payload)
        await nc.flush()
        async with asyncio.timeout(5):
            while True:  # the callback runs on this loop: wait until it did (or nothing changed)
                await asyncio.sleep(0.01)
                if cache.generation:
                    break
        return before - {k for k in before if cache.get(k) is not None}
    finally:
        await cache.stop()
        await nc.close()


U1, U2, S1, S2, S3, O1, O2 = (str(uuid.uuid4()) for _ in range(7))


def _filled() -> AuthCache:
    cache = AuthCache(60.0, 100)
    cache.put(b"a", ok(U1, S1, O1), 0)
    cache.put(b"b", ok(U1, S2, O2), 0)  # the same user on another device, another organisation
    cache.put(b"c", ok(U2, S3, O1), 0)  # a colleague
    cache.put(b"d", ok(U2, str(uuid.uuid4()), O2), 0)
    return cache


def _event(model: contracts.Contract) -> bytes:
    return model.model_dump_json().encode()


@pytest.mark.parametrize(
    ("subject", "payload", "dropped"),
    [
        (
            contracts.SESSION_REVOKED,
            _event(contracts.SessionRevoked(event_id=uuid.uuid4(), user_id=uuid.UUID(U1), session_ids=[])),
            {b"a", b"b"},
        ),
        (
            contracts.SESSION_REVOKED,  # by session id, even of an entry filed under another user
            _event(contracts.SessionRevoked(event_id=uuid.uuid4(), user_id=uuid.uuid4(), session_ids=[uuid.UUID(S3)])),
            {b"c"},
        ),
        (
            contracts.SESSION_SWITCHED,  # every session of the user: the last organisation changed too
            _event(
                contracts.SessionSwitched(
                    event_id=uuid.uuid4(), user_id=uuid.UUID(U1), session_id=uuid.UUID(S1), org_id=uuid.UUID(O2)
                )
            ),
            {b"a", b"b"},
        ),
        (
            contracts.MEMBERSHIP_REMOVED,  # that user in that organisation only
            _event(contracts.MembershipRemoved(event_id=uuid.uuid4(), org_id=uuid.UUID(O1), user_id=uuid.UUID(U2))),
            {b"c"},
        ),
        (contracts.MEMBERSHIP_REMOVED, b'{"event_id": "forged"}', {b"a", b"b", b"c", b"d"}),  # unreadable: all
    ],
    ids=["revoked-by-user", "revoked-by-session", "switched", "membership-removed", "malformed"],
)
async def test_each_identity_event_drops_its_entries(
    nats_server: Any, subject: str, payload: bytes, dropped: set[bytes]
) -> None:
    assert await _event_drops(nats_server.url, subject, payload, _filled()) == dropped


# ---- through a gateway ----------------------------------------------------------------------------


class Identities(identity_pb2_grpc.IdentityServiceServicer):
    """Scripted identity whose answers a test changes (what the real one's database would)."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = dict(TOKENS)
        self.calls = 0

    async def Authenticate(self, request: Any, context: Any) -> Any:
        self.calls += 1
        return self.answers.get(
            request.session_token, identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_INVALID)
        )


@asynccontextmanager
async def gateway(nats_url: str, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Identities, Any]]:
    identities = Identities()

    def register(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identities, server)

    grpc_server, _, grpc_port = await start_server(0, register, secret=SECRET, signer=SIGNER)
    upstream_port, gateway_port = free_port(), free_port()
    up_server, up_task = await serve(Upstream().app(), upstream_port)
    app = create_app(
        Settings(
            internal_secret=SECRET.decode(),
            public_url=f"http://127.0.0.1:{gateway_port}",
            nats={"url": nats_url},
            addresses={
                "identity_url": f"http://127.0.0.1:{upstream_port}",
                "identity_grpc_target": f"127.0.0.1:{grpc_port}",
                "pipelines_url": f"http://127.0.0.1:{upstream_port}",
            },
            **settings,
        )
    )
    gw_server, gw_task = await serve(app, gateway_port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}") as client:
            yield client, identities, app
    finally:
        for server, task in ((gw_server, gw_task), (up_server, up_task)):
            server.should_exit = True
            await task
        await grpc_server.stop(grace=None)


def as_(token: str) -> dict[str, str]:
    return {"cookie": f"session_token={token}"}


async def seen_state(client: httpx.AsyncClient, token: str, path: str = "/api/sources/") -> str:
    """The identity state the service received for a request with `token`."""
    response = await client.get(path, headers=as_(token))
    return str(response.json()["identity"]["state"])


async def test_a_session_asks_identity_once_per_ttl(nats_server: Any) -> None:
    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, _):
        for _ in range(5):
            assert await seen_state(client, "good") == "ok"
        assert identities.calls == 1
        for _ in range(3):  # refusals are asked each time
            assert await seen_state(client, "nope") == "invalid"
        assert identities.calls == 4


async def test_ttl_zero_asks_identity_every_time(nats_server: Any) -> None:
    async with gateway(nats_server.url, gateway_auth_cache_ttl=0) as (client, identities, _):
        for _ in range(3):
            assert await seen_state(client, "good") == "ok"
        assert identities.calls == 3


async def test_a_lost_event_leaves_access_open_at_most_the_ttl(nats_server: Any) -> None:
    """Attack side: the session is revoked in identity and the event never arrives (no NATS
    subscription is involved here); the next request after the TTL is refused."""
    async with gateway(nats_server.url, gateway_auth_cache_ttl=0.5) as (client, identities, _):
        assert await seen_state(client, "good") == "ok"
        identities.answers["good"] = identity_pb2.AuthenticateResponse(state=identity_pb2.AUTH_STATE_INVALID)
        loop = asyncio.get_running_loop()
        revoked_at = loop.time()
        async with asyncio.timeout(5):
            while await seen_state(client, "good") == "ok":
                await asyncio.sleep(0.02)
        assert loop.time() - revoked_at >= 0.4  # it was the cache answering until then
        assert await seen_state(client, "good") == "invalid"


async def test_a_successful_identity_write_fences_the_callers_user_and_organisation(nats_server: Any) -> None:
    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, _):
        identities.answers["removed"] = identity_pb2.AuthenticateResponse(
            state=identity_pb2.AUTH_STATE_OK,
            user_id=USER4,
            session_id="s4",
            org_id=ORG1,
            org_exists=True,
            role="viewer",
        )
        for token in ("good", "removed", "org2"):  # USER1 and USER4 in ORG1, USER2 in ORG2
            assert await seen_state(client, token) == "ok"
        assert identities.calls == 3
        # What identity's database says after the admin's write: USER4 is no longer a member.
        identities.answers["removed"] = identity_pb2.AuthenticateResponse(
            state=identity_pb2.AUTH_STATE_OK, user_id=USER4, session_id="s4", org_id=ORG1, org_exists=True
        )
        assert (await client.get("/api/auth/me", headers=as_("good"))).status_code == 200  # a read: no fence
        assert await seen_state(client, "removed") == "ok" and identities.calls == 3
        response = await client.delete(f"/api/organisations/members/{USER4}", headers=as_("good"))
        assert response.status_code == 200 and identities.calls == 3
        # The very next request of the removed member asks identity: no role any more.
        response = await client.get("/api/sources/", headers=as_("removed"))
        assert response.json()["identity"]["role"] is None and identities.calls == 4
        assert await seen_state(client, "good") == "ok" and identities.calls == 5  # the caller too
        assert await seen_state(client, "org2") == "ok" and identities.calls == 5  # another organisation: kept


async def test_a_logout_through_this_gateway_ends_the_session_on_the_next_request(nats_server: Any) -> None:
    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, _):
        assert await seen_state(client, "good") == "ok"
        assert await seen_state(client, "good2") == "ok"  # the same user's other device
        identities.answers.pop("good")
        identities.answers.pop("good2")
        assert (await client.post("/api/auth/logout", headers=as_("good"))).status_code == 200
        assert await seen_state(client, "good") == "invalid"
        assert await seen_state(client, "good2") == "invalid"


async def test_an_event_ends_a_cached_session_on_the_next_request(nats_server: Any) -> None:
    """The other replica's case: the write went through another gateway, the event arrives."""
    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, app):
        assert await seen_state(client, "good") == "ok"
        identities.answers.pop("good")
        assert await seen_state(client, "good") == "ok"  # cached: nothing announced yet
        cache = app.authenticator.cache
        generation = cache.generation
        nc = await nats.connect(nats_server.url)
        try:
            event = contracts.SessionRevoked(
                event_id=uuid.uuid4(), user_id=uuid.UUID(USER1), session_ids=[uuid.UUID(SESSION1)]
            )
            await nc.publish(contracts.SESSION_REVOKED, _event(event))
            await nc.flush()
        finally:
            await nc.close()
        await _until(lambda: cache.generation > generation)
        assert await seen_state(client, "good") == "invalid"


async def test_a_stale_cached_answer_is_replaced_by_the_realtime_recheck(nats_server: Any) -> None:
    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, app):
        assert await seen_state(client, "org2") == "ok"
        identities.answers.pop("org2")
        authenticator = app.authenticator
        assert (await authenticator.authenticate("org2")).state == "ok"  # cached
        assert (await authenticator.authenticate("org2", fresh=True)).state == "invalid"
        assert await seen_state(client, "org2") == "invalid"


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_realtime_handshake_asks_identity_past_the_cache(nats_server: Any) -> None:
    """A stream lives long: its handshake is not answered from a cached (maybe stale) session."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async with gateway(nats_server.url, gateway_auth_cache_ttl=60) as (client, identities, _):
        assert await seen_state(client, "good") == "ok"
        identities.answers.pop("good")  # revoked, and no event came
        url = str(client.base_url).replace("http://", "ws://") + "/api/ws"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=as_("good")):
                pass
        assert refused.value.response.status_code == 403
