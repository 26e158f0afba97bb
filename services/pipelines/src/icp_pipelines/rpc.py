"""The pipelines service's gRPC server (pipelines.v1), registered in the API process.

Every method requires the internal credential and carries the caller's identity (shared
interceptor); each servicer method applies the same role minimum and tenant scoping as the
matching REST route, through the same service functions."""

from __future__ import annotations

import logging

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner
from icp_protos.interloper.pipelines.v1 import pipelines_pb2_grpc

from .assets.servicer import AssetsServicer
from .backfills.servicer import BackfillsServicer
from .catalog.loader import CatalogIndex
from .catalog.servicer import CatalogServicer
from .crypto import Cipher
from .destinations.servicer import DestinationsServicer
from .jobs.servicer import JobsServicer
from .runs.servicer import RunsServicer
from .settings import Settings
from .sources.servicer import SourcesServicer

log = logging.getLogger(__name__)


class PipelinesServicer(
    CatalogServicer,
    SourcesServicer,
    AssetsServicer,
    DestinationsServicer,
    JobsServicer,
    BackfillsServicer,
    RunsServicer,
    pipelines_pb2_grpc.PipelinesServiceServicer,
):
    """pipelines.v1.PipelinesService, one thin method per domain mixin."""


async def start_grpc(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    catalog: CatalogIndex,
    cipher: Cipher,
    secret: bytes,
    signer: IdentitySigner,
    *,
    port: int | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on `port` (default: settings.grpc_port); returns it and its bound port."""

    def register(server: grpc.aio.Server) -> None:
        pipelines_pb2_grpc.add_PipelinesServiceServicer_to_server(PipelinesServicer(sessions, catalog, cipher), server)

    server, _, bound = await start_server(
        settings.grpc_port if port is None else port, register, secret=secret, signer=signer, host=settings.http_host
    )
    log.info("gRPC listening on %s:%s", settings.http_host, bound)
    return server, bound
