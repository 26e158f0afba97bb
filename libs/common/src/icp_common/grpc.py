"""gRPC plumbing: an aio server whose interceptor authenticates internal callers, verifies the
caller's identity into a ContextVar and maps domain errors to status codes; and a client
helper that adds the same metadata and a deadline to every call."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from .context import current_request_id, identity_var, new_request_id, request_id_var
from .errors import (
    DATA_ERROR_DETAIL,
    DATABASE_UNAVAILABLE_DETAIL,
    TRANSACTION_CONFLICT_DETAIL,
    DomainError,
    is_data_error,
    is_transaction_conflict,
    is_unavailable_error,
)
from .identity import (
    IDENTITY_HEADER,
    INTERNAL_TOKEN_HEADER,
    REQUEST_ID_HEADER,
    Identity,
    IdentitySigner,
    derive_key,
)
from .metrics import GrpcMetricsInterceptor
from .telemetry import annotate, grpc_client_interceptors, grpc_server_interceptors

log = logging.getLogger(__name__)
T = TypeVar("T")

# Clients ping an idle connection every KEEPALIVE_MS (a peer gone without a FIN is noticed);
# servers accept pings twice as often, also while only the health-check stream is open: with
# grpc's server defaults (5 min, no pings without calls) every channel, which always has its
# grpc.health.v1 Watch open, got GOAWAY "too_many_pings" after three pings and reconnected.
KEEPALIVE_MS = int(os.environ.get("INTERLOPER_GRPC_KEEPALIVE_MS", "30000"))


def server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ]


_STATUS = {name: getattr(grpc.StatusCode, name) for name in grpc.StatusCode.__members__}


def internal_token(secret: bytes) -> str:
    """The shared credential internal callers present (derived, so the secret never travels)."""
    return derive_key(secret, "internal-call-v1").hex()


def current_identity() -> Identity:
    """The identity of the gRPC call being served (anonymous if none was sent)."""
    return identity_var.get() or Identity.anonymous()


def finish_even_if_cancelled(call: Awaitable[T]) -> Awaitable[T]:
    """`call` runs to its end even when its caller is cancelled (a client's deadline, a
    disconnect): the caller gets CancelledError at once, the work finishes in the background.
    Stopped mid-query, it made SQLAlchemy discard the pooled connection, so the next call opened
    a new PostgreSQL backend with cold caches (`make soak`: fresh backends growing mid-run)."""
    task = asyncio.ensure_future(call)
    task.add_done_callback(_retrieve)
    return asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned call's outcome as seen (its caller is gone; no "never retrieved" log)."""
    if not task.cancelled():
        task.exception()


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Per call: check the internal credential, verify the identity, set the request id, and
    turn domain errors into status codes (servicers stay free of try/except)."""

    def __init__(self, secret: bytes, signer: IdentitySigner, open_methods: Sequence[str] = ()) -> None:
        self._token = internal_token(secret)
        self._signer = signer
        self._open = set(open_methods) | {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        token, signer, is_open = self._token, self._signer, method in self._open

        async def admit(context: grpc.aio.ServicerContext) -> None:
            request_id_var.set(metadata.get(REQUEST_ID_HEADER) or new_request_id())
            if not is_open and not hmac.compare_digest(metadata.get(INTERNAL_TOKEN_HEADER, ""), token):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "internal credential required")
            identity = signer.verify(metadata.get(IDENTITY_HEADER))
            identity_var.set(identity)
            annotate(org_id=identity.org_id)  # on the call's span, when tracing

        async def fail(exc: Exception, context: grpc.aio.ServicerContext) -> None:
            if isinstance(exc, DomainError):
                detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
                await context.abort(_STATUS[exc.grpc_code], detail)
            if is_data_error(exc):
                log.info("database refused a value in %s: %s", method, exc)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, DATA_ERROR_DETAIL)
            if is_unavailable_error(exc):
                log.warning("database unavailable in %s: %s", method, exc)
                await context.abort(grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE_DETAIL)
            if is_transaction_conflict(exc):  # deadlock or serialization failure: rolled back, retry
                log.warning("transaction aborted by the database in %s: %s", method, exc)
                await context.abort(grpc.StatusCode.UNAVAILABLE, TRANSACTION_CONFLICT_DETAIL)
            log.error("unhandled error in %s", method, exc_info=exc)
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error")

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def wrapped_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    await admit(context)
                    return await finish_even_if_cancelled(unary(request, context))
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(exc, context)

            return grpc.unary_unary_rpc_method_handler(
                wrapped_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def wrapped_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    await admit(context)
                    async for item in stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(exc, context)

            async def wrapped_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                # A coroutine writing with context.write() (grpc.health.v1's Watch, which
                # client-side health checking calls): awaited, not iterated.
                try:
                    await admit(context)
                    await stream(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(exc, context)

            return grpc.unary_stream_rpc_method_handler(
                wrapped_writer if inspect.iscoroutinefunction(stream) else wrapped_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        # Client-streaming shapes are not wrapped, so they are refused rather than served unchecked.
        async def refuse(_: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming requests are not served")

        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def start_server(
    port: int,
    register: Callable[[grpc.aio.Server], None],
    *,
    secret: bytes,
    signer: IdentitySigner,
    host: str = "127.0.0.1",
    open_methods: Sequence[str] = (),
) -> tuple[grpc.aio.Server, HealthServicer, int]:
    """Start an aio server with our interceptor and grpc.health.v1; returns the bound port."""
    # The tracing interceptor (none when off) first: its span covers ours and the servicer.
    interceptors = [
        *grpc_server_interceptors(),
        GrpcMetricsInterceptor(),
        ServerInterceptor(secret, signer, open_methods),
    ]
    server = grpc.aio.server(interceptors=interceptors, options=server_options())
    register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, health, bound


# Methods a client sends again on UNAVAILABLE (a replica gone before answering, a transaction the
# database rolled back): reads, which change nothing when repeated. A write (CreateSession,
# TriggerRun, ...) is never retried: the replica may have committed it before dying.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "interloper.identity.v1.IdentityService": ("Authenticate", "GetOrganisation", "ListMembers"),
    "interloper.pipelines.v1.PipelinesService": (
        "ListCatalog",
        "ListSources",
        "ListAssets",
        "ListDestinations",
        "ListDependencies",
        "GetLineage",
        "ListJobs",
        "ListBackfills",
        "ListRuns",
        "GetRun",
    ),
}


def service_config(idempotent: Mapping[str, Sequence[str]] = IDEMPOTENT_METHODS) -> dict[str, Any]:
    """The gRPC service config of every internal channel: grpcio's round_robin over every address
    the target resolves to (``ipv4:a:1,b:2`` locally, ``dns:///name:port`` of a headless Service
    in Kubernetes), only to backends whose grpc.health.v1 status is SERVING (client-side health
    checking, so a replica that stops serving leaves the rotation), and retries of idempotent
    methods on UNAVAILABLE, which then go to another replica."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
    }
    names = [{"service": service, "method": method} for service, methods in idempotent.items() for method in methods]
    if names:
        config["methodConfig"] = [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return config


def channel_options(idempotent: Mapping[str, Sequence[str]] = IDEMPOTENT_METHODS) -> list[tuple[str, Any]]:
    return [
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(idempotent))),
    ]


class InternalClient:
    """A channel to another service plus the metadata every internal call carries."""

    def __init__(
        self,
        target: str,
        secret: bytes,
        signer: IdentitySigner,
        *,
        audience: str | None = None,
        timeout: float = 5.0,
        idempotent: Mapping[str, Sequence[str]] = IDEMPOTENT_METHODS,
    ) -> None:
        self.target = target  # one address, or several (replicas): see service_config
        self.audience = audience  # the service behind `target`: identity assertions are minted for it
        self.channel = grpc.aio.insecure_channel(
            target,
            options=channel_options(idempotent),
            interceptors=grpc_client_interceptors() or None,  # traceparent in the metadata, when tracing
        )
        # Connect (and start health checking) now, not on the first call, which would pay for it.
        self.channel.get_state(try_to_connect=True)
        self._token = internal_token(secret)
        self._signer = signer
        self.timeout = timeout

    def metadata(self, identity: Identity | None = None) -> tuple[tuple[str, str], ...]:
        items = [
            (INTERNAL_TOKEN_HEADER, self._token),
            (REQUEST_ID_HEADER, current_request_id() or new_request_id()),
        ]
        if identity is not None:
            items.append((IDENTITY_HEADER, self._signer.sign(identity, audience=self.audience)))
        return tuple(items)

    async def close(self) -> None:
        await self.channel.close()
