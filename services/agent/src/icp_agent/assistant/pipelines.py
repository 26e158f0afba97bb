"""pipelines.v1 over gRPC on behalf of the user who is chatting.

Every call carries the internal credential and the chatting user's identity (from the current
chat turn), so the pipelines service applies that user's role and organisation: a tool can never
see or change more than the user could through the REST API. gRPC errors become ToolError, which
the tools hand back to the model as a result (never a crash of the chat)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from icp_common.grpc import InternalClient
from icp_common.identity import IdentitySigner
from icp_protos.interloper.pipelines.v1 import pipelines_pb2_grpc

from .turn import current_turn

log = logging.getLogger(__name__)

R = TypeVar("R")

_CODES = {
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.ALREADY_EXISTS: "conflict",
    grpc.StatusCode.FAILED_PRECONDITION: "failed_precondition",
}


class ToolError(Exception):
    """An error a tool reports to the model as its result: `{"status": "error", ...}`."""

    def __init__(self, message: str, code: str = "invalid_argument") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def result(self) -> dict[str, Any]:
        return {"status": "error", "error": self.message, "code": self.code}


def _tool_error(exc: grpc.aio.AioRpcError) -> ToolError:
    status = exc.code()
    if status in _CODES:
        return ToolError(exc.details() or status.name, _CODES[status])
    log.warning("pipelines call failed: %s %s", status, exc.details())
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ToolError("The pipelines service is unavailable right now; try again later", "unavailable")
    return ToolError("The pipelines service failed to answer", "internal")


class PipelinesClient:
    """One channel to pipelines.v1 for the process; calls act as the current chat turn's user."""

    def __init__(self, target: str, secret: bytes, signer: IdentitySigner, *, timeout: float = 10.0) -> None:
        self._internal = InternalClient(target, secret, signer, audience="pipelines", timeout=timeout)
        self.stub = pipelines_pb2_grpc.PipelinesServiceStub(self._internal.channel)

    @property
    def target(self) -> str:
        return self._internal.target

    async def call(self, rpc: Callable[..., Awaitable[R]], request: Any) -> R:
        identity = current_turn().identity
        try:
            return await rpc(request, metadata=self._internal.metadata(identity), timeout=self._internal.timeout)
        except grpc.aio.AioRpcError as exc:
            raise _tool_error(exc) from None

    async def close(self) -> None:
        await self._internal.close()
