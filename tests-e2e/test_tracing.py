"""Tracing end to end (issue 21): a stack started with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an
OTLP/HTTP receiver run by this test (the standard protocol, decoded with opentelemetry-proto).

One run trigger through Traefik is one trace: Traefik -> gateway -> pipelines (HTTP) -> the outbox
-> NATS -> the worker -> the run process and its assets, and the realtime frames the run emits
come back to the gateway in the same trace. The gateway's gRPC call to identity joins its caller's
trace. Nothing secret is recorded (no query strings, no cookies)."""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from test_execution import demo_job, finished_run, sign_in

from icp_stack.pytest_plugin import StackHandle

SERVER, CLIENT, CONSUMER = ProtoSpan.SPAN_KIND_SERVER, ProtoSpan.SPAN_KIND_CLIENT, ProtoSpan.SPAN_KIND_CONSUMER


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any] = field(hash=False)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind and kind not in ("array_value", "kvlist_value") else str(value)


class Receiver:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf), keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self._body()
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces"
                if ok:
                    receiver.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":  # Traefik's exporter chunks
                    return self.rfile.read(int(self.headers.get("Content-Length", "0")))
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()  # the empty trailer
                return b"".join(chunks)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp-receiver", daemon=True)
        self.thread.start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[StackHandle]:
    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import (
        STACK_TIMEOUT_ENV,
        infra_tmp_dir,
        remove_infra_tmp_dir,
        start_stack,
        stop_stack_process,
    )

    base = infra_tmp_dir(tmp_path_factory, "stack-traced")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export every 0.2 s (default 5 s)
        }
    )
    handle = start_stack(
        base / "data",
        free_port(),
        base / "stack.log",
        ["--without", "agent,notifications,pipelines-scheduler"],
        timeout=float(os.environ.get(STACK_TIMEOUT_ENV, "180")),
        env=env,
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(base)


def _wait_for(receiver: Receiver, probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe(receiver.snapshot())
        if found:
            return found
        time.sleep(0.2)
    seen = [(s.service, s.name, s.kind, s.trace_id[:6], s.span_id[:6], s.parent_id[:6]) for s in receiver.snapshot()]
    raise AssertionError(f"no {what} in the {len(seen)} spans received: {seen}")


def _one(spans: list[Span], what: str, **match: Any) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{what}: {len(found)} spans match {match}: {[(s.service, s.name) for s in spans]}"
    return found[0]


def test_a_run_trigger_is_one_trace_from_traefik_to_the_run_process(
    traced_stack: StackHandle, receiver: Receiver
) -> None:
    with httpx.Client(base_url=traced_stack.base_url, timeout=30.0) as client:
        sign_in(client, "tracy@example.com", "Traced")
        job, _ = demo_job(client)
        r = client.post(f"/api/jobs/{job['id']}/run?probe=secret-value", json={"partition_date": "2024-05-01"})
        assert r.status_code == 200, r.text
        run_id = r.json()["run_id"]
        assert finished_run(client, run_id) == "success"
        cookie = client.cookies["session_token"]

    def route_span(spans: list[Span]) -> Span | None:
        return next(
            (
                s
                for s in spans
                if s.service == "pipelines" and s.kind == SERVER and s.attributes.get("interloper.job_id") == job["id"]
            ),
            None,
        )

    trigger = _wait_for(receiver, route_span, "pipelines span of the run trigger")
    assert trigger.attributes.get("http.route") == "/api/jobs/{job_id}/run"

    def whole(spans: list[Span]) -> list[Span] | None:
        mine = [s for s in spans if s.trace_id == trigger.trace_id]
        services = {s.service for s in mine}
        names = {s.name for s in mine}
        complete = {"traefik", "gateway", "pipelines", "pipelines-worker", "pipelines-run"} <= services
        # Spans arrive as each process exports them: the worker's "run execute" ends (and is sent)
        # after the run process's spans, so wait for every span this test looks at.
        wanted = {"realtime relay", "run execute", "run process"} <= names
        return mine if complete and wanted and any(n.startswith("asset ") for n in names) else None

    trace = _wait_for(receiver, whole, "complete trace of the run")
    by_id = {s.span_id: s for s in trace}

    def parent(span: Span) -> Span:
        assert span.parent_id in by_id, f"{span.service} {span.name} has no parent in the trace"
        return by_id[span.parent_id]

    # Traefik -> gateway (server) -> gateway's upstream request (client) -> pipelines (server).
    proxied = parent(trigger)
    assert (proxied.service, proxied.kind) == ("gateway", CLIENT)
    gateway = parent(proxied)
    assert (gateway.service, gateway.kind, gateway.name) == ("gateway", SERVER, "POST pipelines")
    assert parent(gateway).service == "traefik"
    # The outbox row's traceparent -> NATS headers -> the worker's wake-up, then the run's execution.
    received = _one(trace, "worker wake-up", service="pipelines-worker", kind=CONSUMER)
    assert parent(received) is trigger
    execute = _one(trace, "worker execution", service="pipelines-worker", name="run execute")
    assert parent(execute) is received
    assert execute.attributes["interloper.run_id"] == run_id
    assert execute.attributes["interloper.job_id"] == job["id"]
    assert execute.attributes["interloper.org_id"] == trigger.attributes["interloper.org_id"]
    # The run process continues the worker's span; each asset is a child of the run's span.
    process = _one(trace, "run process", service="pipelines-run", name="run process")
    assert parent(process) is execute
    assets = [s for s in trace if s.name.startswith("asset ")]
    assert assets and all(parent(a) is process for a in assets)
    # Realtime frames of the run reach the gateway in the same trace (emitted by API and worker).
    frames = [s for s in trace if s.name == "realtime relay"]
    assert {parent(f).service for f in frames} >= {"pipelines-worker"}
    # Nothing secret: no query string, no cookie, no header captured, anywhere.
    for span in receiver.snapshot():
        assert not any(".header." in key for key in span.attributes), span
        for value in span.attributes.values():
            assert "secret-value" not in str(value) and cookie not in str(value), span


def test_the_gateways_grpc_call_joins_its_callers_trace(traced_stack: StackHandle, receiver: Receiver) -> None:
    with httpx.Client(base_url=traced_stack.base_url, timeout=30.0) as client:
        sign_in(client, "grace@example.com", "Grpc")  # a new session: the next request asks identity
        assert client.get("/api/auth/me").status_code == 200

    def authenticate(spans: list[Span]) -> Span | None:
        return next(
            (s for s in spans if s.service == "identity" and s.kind == SERVER and s.name.endswith("/Authenticate")),
            None,
        )

    served = _wait_for(receiver, authenticate, "identity's Authenticate span")
    spans = {s.span_id: s for s in receiver.snapshot() if s.trace_id == served.trace_id}
    call = spans.get(served.parent_id)
    assert call is not None and (call.service, call.kind) == ("gateway", CLIENT), "the call is not the server's parent"
    caller = spans.get(call.parent_id)
    assert caller is not None and (caller.service, caller.kind) == ("gateway", SERVER)
