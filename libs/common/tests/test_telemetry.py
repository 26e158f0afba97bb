"""Tracing (icp_common.telemetry): nothing is instrumented without OTEL_* variables; with them, a
request's server span continues the caller's traceparent, its queries and its outbox row join
the trace, and nothing secret is recorded.

Each case runs in a fresh interpreter: a tracer provider is process-wide and would change every
other test of the session (FastAPI itself traces once a provider is set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _python(script: str, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "INTERLOPER_TRACES_FILE"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_otel_variables_nothing_is_instrumented() -> None:
    out = _python(
        """
        import asyncio, json, sys
        import grpc
        from sqlalchemy.ext import asyncio as sa_asyncio
        from icp_common import telemetry
        from icp_common.cli import run_cli
        from icp_common.db import create_engine
        from icp_common.grpc import InternalClient, start_server
        from icp_common.identity import IdentitySigner
        from icp_common.settings import ServiceSettings
        from icp_common.web import create_service_app

        run_cli("interloper-x", "x", {"serve": ("serve", lambda args: None)}, ServiceSettings, ["serve"])
        signer = IdentitySigner(b"k" * 32, 30)
        app = create_service_app("x", signer=signer)

        async def main():
            stack = app.build_middleware_stack()
            layers = []
            while stack is not None:
                layers.append(type(stack).__module__)
                stack = getattr(stack, "app", None)
            client = InternalClient("127.0.0.1:1", b"k" * 32, signer)
            interceptors = client.channel._unary_unary_interceptors
            await client.close()
            made = []  # the interceptors start_server gives grpc.aio.server
            real = grpc.aio.server
            grpc.aio.server = lambda **kw: made.append(kw["interceptors"]) or real(**kw)
            server, _, _ = await start_server(0, lambda s: None, secret=b"k" * 32, signer=signer)
            served = [type(i).__module__ for i in made[0]]
            await server.stop(None)
            engine = create_engine("postgresql+asyncpg://u@127.0.0.1:1/x")
            carrier = {}
            telemetry.inject(carrier)
            with telemetry.span("s"), telemetry.consumer_span("c", {"traceparent": "TRACEPARENT"}):
                pass
            print(json.dumps({
                "enabled": telemetry.enabled(),
                "layers": layers,
                "client_interceptors": len(interceptors or []),
                "server_interceptors": served,
                "engine_wrapped": hasattr(sa_asyncio.create_async_engine, "__wrapped__"),
                "engine_listeners": bool(engine.sync_engine.dispatch.before_cursor_execute),
                "carrier": carrier,
                "same_app": telemetry.wrap_asgi(app, lambda s: "x") is app,
                "modules": sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation"))),
            }))

        asyncio.run(main())
        """.replace("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_ID}-01"),
        {},
    )
    found = json.loads(out.splitlines()[-1])
    assert found["enabled"] is False
    assert not [m for m in found["layers"] if m.startswith("opentelemetry")], found["layers"]
    assert found["client_interceptors"] == 0
    assert found["server_interceptors"] and not [m for m in found["server_interceptors"] if "opentelemetry" in m]
    assert found["engine_wrapped"] is False and found["engine_listeners"] is False
    assert found["carrier"] == {}
    assert found["same_app"] is True
    assert found["modules"] == []  # not even imported


def test_a_request_continues_the_callers_trace_into_its_queries_and_outbox_row(
    fresh_database: str, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    out = _python(
        """
        import asyncio, json, os, sys
        import httpx
        from sqlalchemy import text
        from icp_common import telemetry
        from icp_common.db import create_engine, create_sessionmaker, new_metadata, unit_of_work
        from icp_common.identity import IdentitySigner
        from icp_common.outbox import Outbox, define_outbox
        from icp_common.web import IdentityDep, create_service_app

        assert telemetry.setup("things")
        metadata = new_metadata()
        table = define_outbox(metadata)
        outbox = Outbox(table, "things")
        engine = create_engine(os.environ["DB_URL"], pool_size=2)
        sessions = create_sessionmaker(engine)
        app = create_service_app("things", signer=IdentitySigner(b"k" * 32, 30))

        @app.post("/api/jobs/{job_id}/run")
        async def run(job_id: str, identity: IdentityDep) -> dict[str, str]:  # as every route: the caller
            async with unit_of_work(sessions) as session:
                await session.execute(text("SELECT 1"))
                await outbox.enqueue(session, "things.ran", {"job": job_id})
            return {"ok": job_id}

        async def main():
            async with engine.begin() as conn:  # no request: a query of its own, never a trace
                await conn.run_sync(metadata.create_all)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                r = await client.post(
                    "/api/jobs/j-1/run?code=oauth-secret",
                    headers={"traceparent": "TRACEPARENT", "Cookie": "session_token=cookie-secret"},
                )
                assert r.status_code == 200, r.text
            async with engine.connect() as conn:
                headers = (await conn.execute(text("SELECT headers FROM outbox"))).scalar_one()
            await engine.dispose()
            telemetry.flush()
            print(json.dumps(headers))

        asyncio.run(main())
        """.replace("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_ID}-01"),
        {"INTERLOPER_TRACES_FILE": str(spans_file), "DB_URL": fresh_database},
    )
    headers = json.loads(out.splitlines()[-1])
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    server = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert len(server) == 1, spans
    request = server[0]
    assert request["context"]["trace_id"] == "0x" + TRACE_ID
    assert request["parent_id"] == "0x" + PARENT_ID
    assert request["name"] == "POST /api/jobs/{job_id}/run"
    assert request["attributes"]["interloper.job_id"] == "j-1"
    queries = [s for s in spans if s["kind"] == "SpanKind.CLIENT"]
    assert queries and all(q["parent_id"] == request["context"]["span_id"] for q in queries), queries
    assert all(q["context"]["trace_id"] == "0x" + TRACE_ID for q in spans), "a query outside a request was traced"
    # The outbox row carries the request's span as the parent of whatever consumes the event.
    assert headers["traceparent"] == f"00-{TRACE_ID}-{request['context']['span_id'][2:]}-01"
    text = spans_file.read_text()
    assert "oauth-secret" not in text and "cookie-secret" not in text
