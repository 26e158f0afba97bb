"""Tracing with OpenTelemetry: off unless the standard variables configure it.

`setup` (called by every process's start, `icp_common.cli.run_cli`) reads `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `..._TRACES_ENDPOINT`), `OTEL_TRACES_EXPORTER`, `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER`
(+ `_ARG`), plus `INTERLOPER_TRACES_FILE` (spans as JSON lines appended to a file: the local stack's
`.data/traces.jsonl`). When none is set nothing is instrumented: the helpers below return the plain
app, no interceptors, no trace configs, and the span helpers are no-ops; the OpenTelemetry packages
are not even imported.

The W3C `traceparent` travels gateway -> service (HTTP) -> gRPC -> the outbox row's headers -> NATS
headers -> consumers (worker, notifications, identity, the gateway's realtime relay) -> the run
process (in its `run` message). Spans never carry bodies, headers, query strings or secret path
segments; ids (organisation, job, run) are attributes.

A span with no parent of kind CLIENT (a database query or gRPC call of a background loop: relay
polls, heartbeats, sweeps) is not sampled: traces start where work starts (a request, a message)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import Span
    from starlette.types import ASGIApp, Scope

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACES_FILE_ENV = "INTERLOPER_TRACES_FILE"
# What a run process may see of the worker's tracing configuration (never OTEL_EXPORTER_OTLP_HEADERS,
# which may hold a collector's credentials: user code runs there).
RUN_PROCESS_ENV = frozenset(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SDK_DISABLED",
        TRACES_FILE_ENV,
    }
)
# Never traced: probes and metrics scrapes.
EXCLUDED_URLS = r"^[a-z]+://[^/]+/(healthz|readyz|metrics|api/health)/?(\?|$)"
# Path segments that are secrets (the invitation link's token): never in a span.
_SECRET_SEGMENT = re.compile(r"^(/invite/)[^/]+")
# Path parameters recorded on a request's span (ids only; see `annotate_request`).
_ID_PARAMS = {"org_id", "job_id", "run_id", "backfill_id", "pipeline_id", "schedule_id", "token_id"}

_enabled = False


def enabled() -> bool:
    """Whether `setup` installed tracing in this process."""
    return _enabled


def configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (the standard OTEL_* variables, or a spans file)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = exporters(env)
    return bool(names - {"none"}) or bool(env.get(TRACES_FILE_ENV))


def exporters(env: Mapping[str, str]) -> set[str]:
    named = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if not named and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        named = {"otlp"}
    return named


def service_name(prog: str, command: str) -> str:
    """`interloper-pipelines worker` -> `pipelines-worker` (`serve` is the service itself)."""
    base = prog.removeprefix("interloper-")
    return base if command in ("", "serve") else f"{base}-{command}"


def setup(default_service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the global tracer provider and the SQLAlchemy instrumentation when configured;
    returns whether tracing is on. Called once per process, before apps and engines are made."""
    global _enabled
    env = os.environ if environ is None else environ
    if _enabled or not configured(env):
        return _enabled
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = env.get("OTEL_SERVICE_NAME") or default_service
    # The sampler of OTEL_TRACES_SAMPLER (the SDK's default: parentbased_always_on), wrapped.
    configured_sampler = TracerProvider(shutdown_on_exit=False).sampler
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}), sampler=_no_orphan_clients(configured_sampler)
    )
    names = exporters(env)
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is installed; using it")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in names:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if path := env.get(TRACES_FILE_ENV):
        out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the process's life
        provider.add_span_processor(
            BatchSpanProcessor(ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n"))
        )
    trace.set_tracer_provider(provider)
    # Its declared range ends before SQLAlchemy 2.1, whose event API it uses unchanged (the
    # tests check that queries are traced).
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    _enabled = True
    log.info("tracing on: service %s, exporters %s", name, ", ".join(sorted(names)) or "file")
    return True


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans ended so far (a run process between runs: it may be killed next)."""
    if _enabled:
        from opentelemetry import trace

        force = getattr(trace.get_tracer_provider(), "force_flush", None)
        if force is not None:
            force(timeout_ms)


def _no_orphan_clients(root: Any) -> Any:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind, get_current_span

    class NoOrphanClients(Sampler):  # type: ignore[misc]
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> Any:
            if kind == SpanKind.CLIENT and not get_current_span(parent_context).get_span_context().is_valid:
                return SamplingResult(Decision.DROP)
            return root.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"NoOrphanClients{{{root.get_description()}}}"

    return NoOrphanClients()


# ---- HTTP servers ------------------------------------------------------------------------


def loggable_path(path: str) -> str:
    return _SECRET_SEGMENT.sub(r"\1<redacted>", path)


def _scrub_server_span(span: Span, scope: Scope) -> None:
    """Only the path (secret segments redacted), never the query string (OAuth codes, states)."""
    if span.is_recording():
        path = loggable_path(scope.get("path", ""))
        recorded = getattr(span, "attributes", None) or {}
        for key in ("http.target", "http.url", "url.path", "url.full"):
            if key in recorded:
                span.set_attribute(key, path)
        if "url.query" in recorded:
            span.set_attribute("url.query", "")


def instrument_fastapi(app: FastAPI) -> None:
    """Server spans named by route template (a service's app); nothing when tracing is off."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=EXCLUDED_URLS, server_request_hook=_scrub_server_span, exclude_spans=["receive", "send"]
    )


def wrap_asgi(app: ASGIApp, span_name: Callable[[Scope], str]) -> ASGIApp:
    """`app` behind a server-span middleware (the gateway); `app` itself when tracing is off."""
    if not _enabled:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def details(scope: Scope) -> tuple[str, dict[str, Any]]:
        return span_name(scope), {}

    wrapped: ASGIApp = OpenTelemetryMiddleware(
        app,
        excluded_urls=EXCLUDED_URLS,
        default_span_details=details,
        server_request_hook=_scrub_server_span,
        exclude_spans=["receive", "send"],
    )
    return wrapped


def annotate(**ids: object) -> None:
    """Set `interloper.<name>` attributes on the current span (ids only, never secrets)."""
    if not _enabled:
        return
    from opentelemetry.trace import get_current_span

    span = get_current_span()
    if span.is_recording():
        for key, value in ids.items():
            if value is not None:
                span.set_attribute(f"interloper.{key}", str(value))


def annotate_request(org_id: object, path_params: Mapping[str, Any]) -> None:
    """The caller's organisation and the ids in the route's path on the request's span."""
    if _enabled:
        annotate(org_id=org_id, **{k: v for k, v in path_params.items() if k in _ID_PARAMS})


# ---- gRPC --------------------------------------------------------------------------------


def grpc_client_interceptors() -> list[Any]:
    """Client spans + traceparent in the call's metadata (none when off; not for health checks)."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

    return list(aio_client_interceptors(filter_=filters.negate(filters.health_check())))  # type: ignore[no-untyped-call]


def grpc_server_interceptors() -> list[Any]:
    """Server spans continuing the caller's trace (none when off). Metadata is not recorded.
    grpc.health.v1 is left alone: the interceptor iterates a streaming handler's answers, which
    breaks Health/Watch (it writes with context.write), and so the channels' health checking."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return [aio_server_interceptor(filter_=filters.negate(filters.health_check()))]  # type: ignore[no-untyped-call]


# ---- messages: outbox -> NATS -> consumers -------------------------------------------------


def inject(carrier: MutableMapping[str, str]) -> None:
    """Add the current trace context (`traceparent`, `tracestate`) to `carrier` (message headers)."""
    if _enabled:
        from opentelemetry.propagate import inject as _inject

        _inject(carrier)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


@contextlib.contextmanager
def consumer_span(name: str, headers: Mapping[str, str] | None, **ids: object) -> Iterator[None]:
    """A CONSUMER span for a message, child of the trace in its headers. Only when the message
    carries one: an untraced message starts no trace of its own."""
    if not _enabled or not headers or TRACEPARENT not in headers:
        yield
        return
    with span(name, headers, kind="consumer", **ids):
        yield


@contextlib.contextmanager
def span(name: str, parent: Mapping[str, str] | None = None, kind: str = "internal", **ids: object) -> Iterator[None]:
    """A span named `name`, current inside the block, child of the trace context in `parent`
    (headers holding a traceparent) or of the current span; no-op when tracing is off."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    context = extract(parent) if parent is not None else None
    tracer = trace.get_tracer("icp_common.telemetry")
    attributes = {f"interloper.{k}": str(v) for k, v in ids.items() if v is not None}
    with tracer.start_as_current_span(name, context=context, kind=trace.SpanKind[kind.upper()], attributes=attributes):
        yield


def current_context() -> Any:
    """The current trace context, for spans recorded later from another thread (None when off)."""
    if not _enabled:
        return None
    from opentelemetry import context

    return context.get_current()


def record_span(
    name: str, parent: Any, start: datetime, end: datetime, error: str | None = None, **ids: object
) -> None:
    """A finished span with the given times (events reported after the fact: a run's assets)."""
    if not _enabled:
        return
    from opentelemetry import trace

    attributes = {f"interloper.{k}": str(v) for k, v in ids.items() if v is not None}
    tracer = trace.get_tracer("icp_common.telemetry")
    started = tracer.start_span(name, context=parent, start_time=_ns(start), attributes=attributes)
    if error is not None:
        started.set_status(trace.Status(trace.StatusCode.ERROR, error[:200]))
    started.end(end_time=max(_ns(end), _ns(start)))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
