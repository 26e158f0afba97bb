"""Metrics of every component (issue 21): after real traffic through Traefik (a run executed, an
invitation mailed, the assistant's API, a gRPC call), each process's /metrics on its internal port
has its RED metrics by route template and its domain metrics, the NATS and PostgreSQL sources
report, every metric the alert rules and dashboards use is served, and the public entrypoint
serves none of it."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import promql_parser
import pytest
import yaml  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from test_execution import demo_job, finished_run, sign_in

from icp_stack.pytest_plugin import StackHandle

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy/observability"
SERVICES = ("gateway", "identity", "pipelines", "pipelines-worker", "pipelines-scheduler", "notifications", "agent")
Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> tuple[Samples, set[str]]:
    """Samples by name, and every family name served (a family without samples included)."""
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, (url, r.status_code)
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(r.text):
        families.add(family.name)
        if family.type == "counter":
            families.add(family.name + "_total")
        for sample in family.samples:
            families.add(sample.name)
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for found, number in samples.get(name, []):
        if labels.items() <= found.items():
            return number
    return None


def until(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {result!r}")


def metrics_url(stack: StackHandle, name: str) -> str:
    return f"{stack.component(name)['http_url']}/metrics"


def used_metric_names() -> set[str]:
    """Every metric name the alert rules and the dashboards query."""
    expressions = [
        rule["expr"]
        for group in yaml.safe_load((OBSERVABILITY / "prometheus/alerts.yml").read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    for path in (OBSERVABILITY / "grafana").glob("*.json"):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            expressions += [t["expr"].replace("$__rate_interval", "5m") for t in panel["targets"]]
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    for expr in expressions:
        promql_parser.walk(promql_parser.parse(expr), visit, None)
    return names


@pytest.fixture(scope="module")
def traffic(stack: StackHandle) -> dict[str, str]:
    """A signed-in owner runs a demo job to its end and invites someone; the assistant's API and
    pipelines' gRPC server are called once."""
    with httpx.Client(base_url=stack.base_url, timeout=30, follow_redirects=True) as client:
        sign_in(client, f"m-{uuid.uuid4().hex[:8]}@e2e.example", "Metrics")
        job, _ = demo_job(client)
        run = client.post(f"/api/jobs/{job['id']}/run", json={"partition_date": "2024-05-01"})
        assert run.status_code == 200, run.text
        run_id = run.json()["run_id"]
        assert finished_run(client, run_id) == "success"
        invitee = f"invitee-{uuid.uuid4().hex[:8]}@e2e.example"
        assert client.post("/api/organisations/invite", json={"email": invitee, "role": "viewer"}).status_code == 201
        assert client.get("/api/agent/sessions").status_code == 200
    target = stack.component("pipelines")["grpc_target"]
    with grpc.insecure_channel(target) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return {"job_id": job["id"], "run_id": run_id}


def test_every_component_serves_its_metrics(stack: StackHandle, traffic: dict[str, str]) -> None:
    gateway, _ = scrape(metrics_url(stack, "gateway"))
    run = value(gateway, "icp_gateway_requests_total", upstream="pipelines", route="/api/jobs/{job_id}/run")
    assert run is not None and run >= 1, "proxied requests are labelled by owner and route template"
    assert value(gateway, "icp_gateway_requests_total", upstream="identity", route="/api/organisations") is not None
    assert not [
        labels for labels, _ in gateway["icp_gateway_requests_total"] if traffic["job_id"] in labels["route"]
    ], "never a raw path"
    assert value(gateway, "icp_gateway_requests_total", route="unmatched", upstream="pipelines") is None

    identity, _ = scrape(metrics_url(stack, "identity"))
    assert value(identity, "icp_http_requests_total", service="identity", route="/api/organisations") is not None
    authenticate = value(identity, "icp_grpc_server_handled_total", grpc_method="Authenticate", grpc_code="OK")
    assert authenticate is not None and authenticate >= 1
    assert value(identity, "icp_grpc_server_handling_seconds_count", grpc_method="Authenticate") is not None

    pipelines, _ = scrape(metrics_url(stack, "pipelines"))
    assert value(pipelines, "icp_http_requests_total", service="pipelines", route="/api/jobs/{job_id}/run") is not None
    assert value(pipelines, "icp_http_request_duration_seconds_count", route="/api/jobs/{job_id}/run") is not None
    assert value(pipelines, "icp_grpc_server_handled_total", grpc_service="grpc.health.v1.Health", grpc_code="OK")

    worker, _ = scrape(metrics_url(stack, "pipelines-worker"))
    ended = sum(n for labels, n in worker.get("icp_pipelines_run_duration_seconds_count", []))
    assert ended >= 1, "run durations by final status"

    agent, _ = scrape(metrics_url(stack, "agent"))
    assert value(agent, "icp_http_requests_total", service="agent", route="/api/agent/sessions") is not None

    # Sampled in the background (every 15 s, at start-up first): waited for, not timed.
    def sampled() -> dict[str, Samples]:
        return {name: scrape(metrics_url(stack, name))[0] for name in SERVICES}

    def ready(s: dict[str, Samples]) -> bool:
        return (
            all(
                (
                    value(
                        s["notifications"],
                        "icp_notifications_email_deliveries_total",
                        kind="invitation",
                        outcome="sent",
                    )
                    or 0
                )
                >= 1
                and value(s["notifications"], "icp_jetstream_consumer_pending", consumer=consumer) is not None
                for consumer in ("notifications-invitations", "notifications-alerts")
            )
            and value(s["identity"], "icp_jetstream_consumer_pending", consumer="identity-audit") is not None
        )

    samples = until(lambda: (lambda s: s if ready(s) else None)(sampled()), "sampled metrics")
    for name in ("identity", "notifications", "agent", "pipelines", "pipelines-worker", "pipelines-scheduler"):
        service = "pipelines" if name.startswith("pipelines") else name
        assert value(samples[name], "icp_postgres_up", service=service) == 1, name
        assert value(samples[name], "icp_postgres_transactions_total", service=service, outcome="commit"), name
        assert value(samples[name], "icp_postgres_pool_connections", service=service, state="checked_in") is not None
    for name in ("identity", "pipelines", "notifications"):
        assert value(samples[name], "icp_outbox_backlog", service=name) is not None, name
        assert value(samples[name], "icp_outbox_oldest_age_seconds", service=name) is not None, name
    assert value(samples["notifications"], "icp_jetstream_consumer_redelivered", consumer="notifications-alerts") == 0
    scheduler = samples["pipelines-scheduler"]
    for name in (
        "icp_pipelines_queued_runs",
        "icp_pipelines_oldest_queued_run_age_seconds",
        "icp_pipelines_oldest_run_in_flight_age_seconds",
    ):
        assert value(scheduler, name) is not None, name
    # NATS in Prometheus format: the scheduler translates nats-server's monitoring endpoint.
    assert value(scheduler, "icp_nats_monitor_up") == 1
    assert (value(scheduler, "gnatsd_varz_connections") or 0) >= 5  # every service's connection
    assert value(scheduler, "icp_nats_jetstream_stream_messages", stream="REALTIME") is not None
    assert value(scheduler, "icp_nats_jetstream_consumer_pending", consumer="identity-audit") is not None


def test_every_metric_of_the_rules_and_dashboards_is_served(stack: StackHandle, traffic: dict[str, str]) -> None:
    served = {"up"}  # Prometheus's own, per target
    for name in SERVICES:
        served |= scrape(metrics_url(stack, name))[1]
    traefik = stack.component("traefik")["metrics_url"]
    served |= scrape(traefik)[1]
    missing = {
        name
        for name in used_metric_names()
        if name not in served and name.removesuffix("_bucket") not in served  # a histogram without samples yet
    }
    assert not missing, sorted(missing)


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/metrics/",
        "/api/../metrics",
        "/api/%2e%2e/metrics",
        "/./metrics",
        "//metrics",
        "/metrics?format=prometheus",
        "/METRICS",
        "/%6Detrics",
        "/api/metrics",
        "/api/health/../../metrics",
    ],
)
def test_the_public_entrypoint_serves_no_metrics(stack: StackHandle, path: str) -> None:
    """Through Traefik's public port, whatever the spelling: never Prometheus' exposition format."""
    host, port = stack.base_url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path)  # the path exactly as written: no client-side normalisation
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        content_type = response.getheader("content-type") or ""
    finally:
        conn.close()
    assert "# TYPE" not in body and "# HELP" not in body, (path, response.status)
    assert "icp_" not in body and "version=0.0.4" not in content_type, path
