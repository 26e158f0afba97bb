"""Cookie -> identity: one gRPC Authenticate call to the identity service per request."""

from __future__ import annotations

import grpc

from icp_common.errors import Unavailable
from icp_common.grpc import InternalClient
from icp_common.identity import Identity
from icp_protos.interloper.identity.v1 import identity_pb2, identity_pb2_grpc

SESSION_COOKIE = "session_token"

_STATES = {
    identity_pb2.AUTH_STATE_OK: "ok",
    identity_pb2.AUTH_STATE_INVALID: "invalid",
    identity_pb2.AUTH_STATE_ANONYMOUS: "anonymous",
}


class Authenticator:
    def __init__(self, client: InternalClient, timeout: float) -> None:
        self._client = client
        self._stub = identity_pb2_grpc.IdentityServiceStub(client.channel)
        self._timeout = timeout

    async def authenticate(self, session_token: str | None) -> Identity:
        """Who holds this session token (anonymous without a cookie: no call made). An empty
        cookie (what a logout leaves behind) is no cookie: 401 `Not authenticated`."""
        if not session_token:
            return Identity.anonymous()
        try:
            reply = await self._stub.Authenticate(
                identity_pb2.AuthenticateRequest(session_token=session_token),
                timeout=self._timeout,
                metadata=self._client.metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable("Service unavailable: identity", headers={"Retry-After": "1"}) from exc
        state = _STATES.get(reply.state, "invalid")
        if state != "ok":
            return Identity(state=state)  # type: ignore[arg-type]
        return Identity(
            state="ok",
            user_id=reply.user_id,
            email=reply.email,
            name=reply.name or None,
            avatar_url=reply.avatar_url or None,
            session_id=reply.session_id,
            org_id=reply.org_id or None,
            org_exists=reply.org_exists,
            role=reply.role or None,
            last_organisation_id=reply.last_organisation_id or None,
        )
