"""The identity service's gRPC server (identity.v1)."""

from __future__ import annotations

import logging

import grpc

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_common.resources import ServiceResources

from .settings import Settings

log = logging.getLogger(__name__)


async def start_grpc(
    settings: Settings, resources: ServiceResources, secret: bytes, signer: IdentitySigner
) -> grpc.aio.Server:
    def register(server: grpc.aio.Server) -> None:
        pass  # servicers are added by the identity domains

    server, _, port = await start_server(
        settings.grpc_port, register, secret=secret, signer=signer, host=settings.http_host
    )
    log.info("gRPC listening on %s:%s", settings.http_host, port)
    return server
