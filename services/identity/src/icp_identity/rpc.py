"""The identity service's gRPC server (identity.v1).

Every method requires the internal credential (checked by the shared interceptor, which also
verifies the caller identity into a ContextVar and maps domain errors to status codes)."""

from __future__ import annotations

import logging

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_protos.interloper.identity.v1 import identity_pb2_grpc

from .auth.servicer import AuthServicer
from .invitations.servicer import InvitationsServicer
from .members.servicer import MembersServicer
from .organisations.servicer import OrganisationsServicer
from .settings import Settings

log = logging.getLogger(__name__)


class IdentityServicer(
    AuthServicer,
    OrganisationsServicer,
    MembersServicer,
    InvitationsServicer,
    identity_pb2_grpc.IdentityServiceServicer,
):
    """identity.v1.IdentityService, one thin method per domain mixin."""


async def start_grpc(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    secret: bytes,
    signer: IdentitySigner,
    *,
    port: int | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on `port` (default: settings.grpc_port); returns it and its bound port."""

    def register(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(sessions, settings), server)

    server, _, bound = await start_server(
        settings.grpc_port if port is None else port, register, secret=secret, signer=signer, host=settings.http_host
    )
    log.info("gRPC listening on %s:%s", settings.http_host, bound)
    return server, bound
