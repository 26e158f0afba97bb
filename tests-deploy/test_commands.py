"""Each container's command line, run in-process with exactly the environment docker compose or
Kubernetes gives it (servers and migrations stubbed, nothing connects): it must be a real
subcommand, serve on the port its container/Service declares, on all interfaces, and that server
must answer the probe paths (/healthz, /readyz) that the healthchecks and probes use; a migrate
command must migrate the service's own database with its own migrations."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from deploylib import (
    K8S_DIR,
    ServiceImage,
    asgi_status,
    by_kind,
    compose_image,
    compose_service_env,
    container_env,
    containers,
    env_example,
    image_of,
    load_compose,
    render_overlay,
    run_command,
    workloads,
)

COMPOSE = load_compose()
# The edge's JSON 503 responder runs `python -m icp_common.edge_fallback` from the gateway image,
# not a service subcommand: test_compose.py and test_k8s.py check it (and run it).
EDGE_FALLBACK = "edge-fallback"


def _operator_secrets(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """Stand-ins for a Secret the operator creates (production): the development values, with
    an encryption key under the id the overlay's configuration names."""
    dev = render_overlay("dev")
    (secret,) = [s for n, s in by_kind(dev, "Secret").items() if n.startswith("interloper-secrets")]
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    # Keys only production's Secret carries: as its example shows them (e.g. OIDC providers `[]`).
    example = K8S_DIR / "overlays" / "production" / "secrets.env.example"
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and value:
            values.setdefault(name.strip(), value.strip())
    (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("interloper-config")]
    active = config["data"].get("INTERLOPER_ENCRYPTION_ACTIVE_KEY")
    if active:
        values["INTERLOPER_ENCRYPTION_KEYS"] = json.dumps({active: base64.b64encode(bytes(range(32))).decode()})
    return values


def _check_serve(where: str, image: ServiceImage, argv: list[str], env: dict[str, str], http_port: int) -> Any:
    inv = run_command(image.script, argv, env)
    assert inv.exit_code in (None, 0), f"{where}: exit {inv.exit_code}"
    assert len(inv.served) == 1, f"{where}: `{image.script} {' '.join(argv)}` served nothing"
    app, host, port = inv.served[0]
    assert host == "0.0.0.0", f"{where}: listens on {host}, unreachable from other containers"
    assert port == http_port, f"{where}: serves on {port}, the container declares {http_port}"
    assert asgi_status(app, "/healthz") == 200, f"{where}: /healthz"
    assert asgi_status(app, "/readyz") in (200, 503), f"{where}: /readyz is not served"
    assert asgi_status(app, "/metrics") == 200, f"{where}: /metrics"
    return app


def _check_migrate(where: str, image: ServiceImage, env: dict[str, str]) -> None:
    inv = run_command(image.script, ["migrate"], env)
    assert inv.exit_code in (None, 0), f"{where}: exit {inv.exit_code}"
    assert len(inv.migrated) == 1, f"{where}: migrate did not migrate"
    settings, service, migrations = inv.migrated[0]
    assert settings.database_name(service) == f"interloper_{service.replace('-', '_')}"
    assert (migrations / "env.py").exists() and (migrations / "versions").is_dir()
    assert migrations.is_relative_to(image.package.dir), f"{where}: migrations of another package"


COMPOSE_CASES = [
    pytest.param(name, id=name)
    for name, spec in COMPOSE["services"].items()
    if compose_image(spec) is not None and name != EDGE_FALLBACK
]


@pytest.mark.parametrize("name", [c.values[0] for c in COMPOSE_CASES], ids=[c.id for c in COMPOSE_CASES])
def test_compose_service_command(name: str, tmp_path: Any) -> None:
    spec = COMPOSE["services"][name]
    image = compose_image(spec)
    assert image is not None
    env = compose_service_env(spec, env_example())
    argv = list(spec["command"])
    if argv == ["migrate"]:
        _check_migrate(name, image, env)
    elif argv[0] == "mailcatcher":
        inv = run_command(image.script, argv, env)
        assert inv.exit_code in (None, 0)
        assert [(h, p) for h, p, _ in inv.smtp] == [("0.0.0.0", int(argv[argv.index("--port") + 1]))]
        assert spec["volumes"] == ["mail-data:/var/lib/interloper"]
        assert inv.smtp[0][2].is_relative_to("/var/lib/interloper")
    else:
        _check_serve(name, image, argv, env, int(env["INTERLOPER_HTTP_PORT"]))


K8S_CASES = [
    pytest.param(
        overlay, w["kind"], w["metadata"]["name"], c["name"], id=f"{overlay}-{w['metadata']['name']}-{c['name']}"
    )
    for overlay in ("dev", "production")
    for w in workloads(render_overlay(overlay))
    for c in containers(w)
    if image_of(c) is not None and c["name"] != EDGE_FALLBACK
]


@pytest.mark.parametrize(("overlay", "kind", "workload_name", "container_name"), K8S_CASES)
def test_kubernetes_container_command(overlay: str, kind: str, workload_name: str, container_name: str) -> None:
    docs = render_overlay(overlay)
    workload = by_kind(docs, kind)[workload_name]
    (container,) = [c for c in containers(workload) if c["name"] == container_name]
    image = image_of(container)
    assert image is not None
    assert container["command"] == [image.script]
    argv = list(container["args"])
    # Secrets the operator creates (production): the development values stand in.
    env = container_env(container, docs, placeholders=_operator_secrets(docs))
    where = f"{overlay}/{workload_name}/{container_name}"
    if argv == ["migrate"]:
        _check_migrate(where, image, env)
        return
    if argv[0] == "mailcatcher":
        inv = run_command(image.script, argv, env)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert [(h, p) for h, p, _ in inv.smtp] == [("0.0.0.0", ports["smtp"])]
        return
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    app = _check_serve(where, image, argv, env, ports["http"])
    # gRPC: the serving process's settings listen where the container declares.
    settings = getattr(getattr(app, "state", None), "settings", None) or getattr(app, "settings", None)
    if "grpc" in ports:
        assert settings is not None and settings.grpc_port == ports["grpc"], where
    # Probes target paths the app serves.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        path = container[probe]["httpGet"]["path"]
        assert asgi_status(app, path) in (200, 503), f"{where}: {probe} {path}"
