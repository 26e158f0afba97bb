"""identity.v1 Authenticate and CreateSession (thin: proto <-> plain values)."""

from __future__ import annotations

from typing import Any

from icp_common.db import unit_of_work
from icp_common.errors import Forbidden
from icp_common.identity import Identity
from icp_protos.interloper.identity.v1 import identity_pb2 as pb

from ..grpc_base import ServicerBase
from ..sessions import service as sessions_service
from ..tokens import service as tokens_service
from . import service

_STATES = {
    "anonymous": pb.AUTH_STATE_ANONYMOUS,
    "invalid": pb.AUTH_STATE_INVALID,
    "ok": pb.AUTH_STATE_OK,
}


def identity_to_proto(identity: Identity) -> pb.AuthenticateResponse:
    if identity.state != "ok":
        return pb.AuthenticateResponse(state=_STATES.get(identity.state, pb.AUTH_STATE_INVALID))
    return pb.AuthenticateResponse(
        state=pb.AUTH_STATE_OK,
        user_id=identity.user_id or "",
        email=identity.email or "",
        name=identity.name or "",
        avatar_url=identity.avatar_url or "",
        session_id=identity.session_id or "",
        org_id=identity.org_id or "",
        org_exists=identity.org_exists,
        role=identity.role or "",
        last_organisation_id=identity.last_organisation_id or "",
        token_id=identity.token_id or "",
        service_account=identity.service_account,
    )


class AuthServicer(ServicerBase):
    async def Authenticate(self, request: pb.AuthenticateRequest, context: Any) -> pb.AuthenticateResponse:
        """The caller behind a session token: one SQL query (the gateway calls this per request, or
        once per few seconds and session with its cache)."""
        async with self.autocommit.connect() as conn:  # one statement: its own unit of work
            if request.api_token:  # `Authorization: Bearer ilp_...` beats the cookie
                identity, expires_in = await tokens_service.authenticate_until(conn, request.api_token)
            else:
                identity, expires_in = await sessions_service.authenticate_until(conn, request.session_token)
        reply = identity_to_proto(identity)
        if expires_in is not None:
            reply.expires_in_ms = max(1, int(expires_in.total_seconds() * 1000))  # 0 means unknown
        return reply

    async def CreateSession(self, request: pb.CreateSessionRequest, context: Any) -> pb.CreateSessionResponse:
        """A new session for the profile with this e-mail (created on first use); internal callers only,
        and only where INTERLOPER_AUTH_OPERATOR_RPCS is on: the internal credential alone must not
        be enough to become any user."""
        if not self.settings.auth.operator_rpcs:
            raise Forbidden("CreateSession is disabled (INTERLOPER_AUTH_OPERATOR_RPCS)")
        async with unit_of_work(self.sessions) as db:
            new = await service.session_for_email(db, self.settings, request.email, request.name or None)
        return pb.CreateSessionResponse(
            session_token=new.token, user_id=str(new.user_id), session_id=str(new.session_id)
        )
