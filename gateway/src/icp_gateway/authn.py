"""Cookie or API token -> identity: a gRPC Authenticate call to the identity service, or its
recent answer from the session cache (authcache.py)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from starlette.types import Message, Send

from icp_common.errors import Unavailable
from icp_common.grpc import InternalClient
from icp_common.identity import Identity
from icp_protos.interloper.identity.v1 import identity_pb2, identity_pb2_grpc

from .authcache import HITS, MISSES, AuthCache, token_key

SESSION_COOKIE = "session_token"
API_TOKEN_PREFIX = "ilp_"


def bearer_token(authorization: str | None) -> str | None:
    """The API token of an `Authorization: Bearer ilp_...` header; anything else (another
    scheme, a bearer value that is not an API token) is no token at all."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(API_TOKEN_PREFIX):
        return None
    return value


_STATES = {
    identity_pb2.AUTH_STATE_OK: "ok",
    identity_pb2.AUTH_STATE_INVALID: "invalid",
    identity_pb2.AUTH_STATE_ANONYMOUS: "anonymous",
}


class Authenticator:
    def __init__(self, client: InternalClient, timeout: float, cache: AuthCache | None = None) -> None:
        self._client = client
        self._stub = identity_pb2_grpc.IdentityServiceStub(client.channel)
        self._timeout = timeout
        self.cache = cache

    async def authenticate(
        self, session_token: str | None, *, fresh: bool = False, bearer: str | None = None
    ) -> Identity:
        """Who holds this session token (anonymous without a cookie: no call made), or this API
        token (`bearer`, an `ilp_` value: it beats the cookie). An empty cookie (what a logout
        leaves behind) is no cookie: 401 `Not authenticated`. `fresh`: ask identity even when
        the cache has an answer (which the new answer replaces)."""
        if bearer:
            request = identity_pb2.AuthenticateRequest(api_token=bearer)
            key_source = "Bearer " + bearer  # never the key of a cookie with the same value
        elif session_token:
            request = identity_pb2.AuthenticateRequest(session_token=session_token)
            key_source = session_token
        else:
            return Identity.anonymous()
        cache = self.cache
        if cache is None or not cache.enabled:
            MISSES.inc()
            return (await self._ask(request))[0]
        key = token_key(key_source)
        if not fresh:
            cached = cache.get(key)
            if cached is not None:
                HITS.inc()
                return cached
        MISSES.inc()
        generation = cache.generation
        identity, expires_in = await self._ask(request)
        cache.put(key, identity, generation, expires_in)
        return identity

    async def _ask(self, request: identity_pb2.AuthenticateRequest) -> tuple[Identity, float | None]:
        """Identity's answer, with the seconds its session or token has left (None: unknown)."""
        try:
            reply = await self._stub.Authenticate(
                request,
                timeout=self._timeout,
                metadata=self._client.metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable("Service unavailable: identity", headers={"Retry-After": "1"}) from exc
        state = _STATES.get(reply.state, "invalid")
        if state != "ok":
            if request.api_token:  # services answer "Invalid or expired token"
                return Identity(state="invalid", token_id=""), None
            return Identity(state=state), None  # type: ignore[arg-type]
        identity = Identity(
            state="ok",
            user_id=reply.user_id,
            email=reply.email,
            name=reply.name or None,
            avatar_url=reply.avatar_url or None,
            session_id=reply.session_id or None,  # none for an API token
            org_id=reply.org_id or None,
            org_exists=reply.org_exists,
            role=reply.role or None,
            last_organisation_id=reply.last_organisation_id or None,
            token_id=reply.token_id or None,
            service_account=reply.service_account,
        )
        return identity, (reply.expires_in_ms / 1000 if reply.expires_in_ms > 0 else None)

    def fence(self, identity: Identity) -> None:
        """`identity` just changed something in identity: drop what the cache knows of its user
        and its active organisation, so that their next request asks identity again."""
        if self.cache is not None:
            self.cache.fence(identity)


def fence_on_success(send: Send, fence: Callable[[], None]) -> Send:
    """`send`, running `fence` before a 2xx answer starts (before the client can see it)."""

    async def fenced(message: Message) -> None:
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            fence()
        await send(message)

    return fenced
