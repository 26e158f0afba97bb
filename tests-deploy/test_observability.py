"""deploy/observability as operators load it: alert rules that Prometheus accepts (rule file
schema, every PromQL expression parsed by promql-parser, a Rust PromQL parser's binding), the
Kubernetes rendition of the same rules, scrape targets whose jobs the rules name, Grafana
dashboards whose queries parse, and no metric name that our code does not export."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from typing import Any

import promql_parser
import pytest
import yaml  # type: ignore[import-untyped]
from deploylib import ROOT, containers, kubectl, workloads

OBSERVABILITY = ROOT / "deploy/observability"
RULES_FILE = OBSERVABILITY / "prometheus/alerts.yml"
DASHBOARDS = sorted((OBSERVABILITY / "grafana").glob("*.json"))
JOBS = {"gateway", "identity", "pipelines", "pipelines-scheduler", "pipelines-worker", "notifications", "agent"}
INFRA_JOBS = {"traefik", "nats", "postgres"}
# Names exported by others than our code: Prometheus's own `up`, Traefik's (tests-e2e scrapes it).
EXTERNAL_METRICS = {"up", "traefik_entrypoint_requests_total"}
# Modules that define our metrics (imported, then read from the registry).
METRIC_MODULES = (
    "icp_common.web",
    "icp_common.metrics",
    "icp_common.nats_monitor",
    "icp_gateway.route_labels",
    "icp_gateway.realtime",
    "icp_gateway.authcache",
    "icp_pipelines.execution.metrics",
    "icp_notifications.metrics",
)
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
# Grafana's variables, replaced by a value of the same type before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((f"{path.name}: {panel['title']}", expr))
    return found


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit, None)
    return names


def exported_metrics() -> set[str]:
    from prometheus_client import REGISTRY

    for module in METRIC_MODULES:
        importlib.import_module(module)
    from icp_common.metrics import SAMPLED

    return set(REGISTRY._names_to_collectors) | set(SAMPLED.names())


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


# ---- the rule file ---------------------------------------------------------------------------


def test_rule_file_schema() -> None:
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    group_names = [g["name"] for g in document["groups"]]
    assert len(group_names) == len(set(group_names))
    alerts = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            if "for" in rule:
                assert DURATION.match(rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
            for text in rule["annotations"].values():  # Go templates: balanced actions
                assert text.count("{{") == text.count("}}"), text
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts))


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_rule_expression_parses(rule: dict[str, Any]) -> None:
    promql_parser.parse(rule["expr"])


def test_the_expression_check_is_real() -> None:
    for broken in ("sum(rate(x[5m])", "rate(x[5 minutes])", "x >", "histogram_quantile(0.9, sum by le (x))"):
        with pytest.raises(ValueError):
            promql_parser.parse(broken)


def test_the_rules_cover_what_operators_need() -> None:
    """5xx rate, p99 latency, stuck runs, outbox backlog, consumer lag, failing e-mail, a component down."""
    used = {name for rule in rules() for name in metric_names(rule["expr"])}
    for needed in (
        "icp_gateway_requests_total",
        "icp_gateway_request_duration_seconds_bucket",
        "icp_pipelines_oldest_run_in_flight_age_seconds",
        "icp_pipelines_oldest_queued_run_age_seconds",
        "icp_outbox_oldest_age_seconds",
        "icp_jetstream_consumer_pending",
        "icp_notifications_email_deliveries_total",
        "up",
    ):
        assert needed in used, needed
    down = next(r for r in rules() if r["alert"] == "InterloperComponentDown")
    named = set(re.search(r'job=~"([^"]+)"', down["expr"]).group(1).split("|"))  # type: ignore[union-attr]
    assert named == JOBS | INFRA_JOBS


def test_the_kubernetes_rules_are_the_rule_file() -> None:
    spec = importlib.util.spec_from_file_location("render_prometheusrule", ROOT / "scripts/render-prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (OBSERVABILITY / "kubernetes/prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), "run scripts/render-prometheusrule.py after editing alerts.yml"
    document = yaml.safe_load(committed)
    assert document["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]


# ---- scrape targets --------------------------------------------------------------------------


def test_compose_scrape_config_names_every_component() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == JOBS | INFRA_JOBS
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for name in JOBS:  # the service's own HTTP port
        [sd] = jobs[name]["dns_sd_configs"]
        assert sd["names"] == [name]
        assert str(sd["port"]) == compose[name]["environment"]["INTERLOPER_HTTP_PORT"], name
    for name, target in (("nats", "nats-exporter:7777"), ("postgres", "postgres-exporter:9187")):
        assert jobs[name]["static_configs"] == [{"targets": [target]}]
        assert target.split(":")[0] in compose
    assert jobs["traefik"]["static_configs"] == [{"targets": ["traefik:8082"]}]


def _render_with_metrics() -> list[dict[str, Any]]:
    """The dev overlay with the metrics component, as an operator would add it."""
    overlay = ROOT / "deploy/k8s/overlays/.observability-check"
    overlay.mkdir()
    try:
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources:\n  - ../dev\ncomponents:\n  - ../../components/metrics\n",
            encoding="utf-8",
        )
        proc = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    finally:
        (overlay / "kustomization.yaml").unlink()
        overlay.rmdir()
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_kubernetes_monitors_find_their_ports() -> None:
    docs = _render_with_metrics()
    monitors = list(yaml.safe_load_all((OBSERVABILITY / "kubernetes/monitors.yaml").read_text(encoding="utf-8")))
    ports: dict[str, set[str]] = {}
    for workload in workloads(tuple(docs)):
        component = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in containers(workload):
            ports.setdefault(component, set()).update(p["name"] for p in container.get("ports", []))
    scraped: set[str] = set()
    for monitor in monitors:
        if monitor["kind"] == "PodMonitor":
            [expression] = monitor["spec"]["selector"]["matchExpressions"]
            [endpoint] = monitor["spec"]["podMetricsEndpoints"]
            for component in expression["values"]:
                assert endpoint["port"] in ports[component], (component, endpoint["port"])
                scraped.add(component)
        else:
            assert monitor["kind"] == "ServiceMonitor"
            service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "traefik-metrics")
            assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
            assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
            scraped.add("traefik")
    assert scraped == JOBS | INFRA_JOBS
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "prometheus-scrape")
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == {"http", "traefik", "metrics"}
    images = {c["image"] for w in workloads(tuple(docs)) for c in containers(w) if "exporter" in c["name"]}
    assert all(re.search(r":v?[0-9]+\.[0-9]+\.[0-9]+$", image) for image in images) and len(images) == 2


# ---- dashboards and metric names -------------------------------------------------------------


def test_dashboards_are_grafana_json_with_parsing_queries() -> None:
    assert {p.stem for p in DASHBOARDS} == {"api", "execution", "messaging"}
    uids = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        uids.append(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    assert len(uids) == len(set(uids))
    for where, expr in dashboard_queries():
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}: {expr}")


def test_every_metric_used_is_exported_by_our_code() -> None:
    exported = exported_metrics() | EXTERNAL_METRICS
    used = {name for rule in rules() for name in metric_names(rule["expr"])}
    used |= {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    unknown = {name for name in used if name not in exported and base_name(name) not in exported}
    assert not unknown, sorted(unknown)
    assert "icp_pipelines_run_duration_seconds_bucket" in used  # histograms are checked by base name
