"""The local stack's internal balancer: a second Traefik, loopback only, in front of the replicas of
each service the gateway reaches over HTTP when that service runs as several processes
(``interloper-stack up --replicas``).

One entrypoint per balanced service (``127.0.0.1:<port>``, given to the gateway as the service's
URL); its servers are the replicas, health-checked every second (``/healthz``, like the edge's
gateway servers) and a request whose replica cannot be reached (refused, reset before answering)
is retried on another one (any method: nothing was written); one that dies with the request
written to it (Traefik's own 502) only for a GET/HEAD, never a write that may have been
processed. In Kubernetes a ClusterIP Service plays this part. It is a separate process from the
edge Traefik, so the edge stays the repository's configuration and a restart of either one does
not take the other down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from icp_stack.infra.process import ProcessSpec, http_ok
from icp_stack.infra.traefik import default_config_dir, traefik_binary

LOCALHOST = "127.0.0.1"
BALANCER = "traefik-internal"


def dynamic_config(services: Mapping[str, tuple[int, Sequence[str]]]) -> dict[str, Any]:
    """Routers, retry middleware and health-checked load balancers of ``services``."""
    routers: dict[str, Any] = {}
    balancers: dict[str, Any] = {}
    for name, (_, servers) in services.items():
        routers[name] = {
            "entryPoints": [name],
            "rule": "PathPrefix(`/`)",
            "priority": 1,
            "service": name,
            "middlewares": ["retry"],
        }
        routers[f"{name}-reads"] = {
            "entryPoints": [name],
            "rule": "Method(`GET`) || Method(`HEAD`)",
            "priority": 10,
            "service": name,
            "middlewares": ["retry-reads"],
        }
        balancers[name] = {
            "loadBalancer": {
                "healthCheck": {"path": "/healthz", "interval": "1s", "timeout": "3s"},
                "passHostHeader": True,
                # SSE (the agent chat) and streamed bodies go through at once.
                "responseForwarding": {"flushInterval": "-1ms"},
                "servers": [{"url": url} for url in servers],
            }
        }
    return {
        "http": {
            "routers": routers,
            # Backoff 100, 200, 200 ms: a replica just killed is skipped (round robin) before its
            # health check has seen it gone. Status 502 is Traefik's own answer when a replica
            # dies with the request written to it: a GET/HEAD is sent again, nothing else (Traefik's
            # status retry would resend PUT/DELETE/OPTIONS too, so only the reads' router has it).
            "middlewares": {
                "retry": {"retry": {"attempts": 4, "initialInterval": "100ms"}},
                "retry-reads": {"retry": {"attempts": 4, "initialInterval": "100ms", "status": ["502"]}},
            },
            "services": balancers,
        }
    }


def static_config(
    ping_port: int,
    services: Mapping[str, tuple[int, Sequence[str]]],
    dynamic_file: Path,
    http: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``http``: the entrypoints' request handling (the edge's: encoded characters, header aliases),
    so a request the edge let through is never refused here."""
    entry_points: dict[str, Any] = {
        name: {
            "address": f"{LOCALHOST}:{port}",
            "http": dict(http or {}),
            # The gateway's X-Forwarded-* (client address first, public host and scheme) pass on.
            "forwardedHeaders": {"trustedIPs": [f"{LOCALHOST}/32"]},
            "transport": {"lifecycle": {"graceTimeOut": "1s", "requestAcceptGraceTimeout": "0s"}},
        }
        for name, (port, _) in services.items()
    }
    entry_points["ping"] = {"address": f"{LOCALHOST}:{ping_port}", "http": {"aliasHeadersStrategy": "delete"}}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": entry_points,
        "ping": {"entryPoint": "ping"},
        "providers": {"file": {"filename": str(dynamic_file), "watch": False}, "providersThrottleDuration": "100ms"},
        "log": {"level": "WARN", "format": "json"},
    }


@dataclass
class InternalBalancer:
    work_dir: Path
    ping_port: int
    services: Mapping[str, tuple[int, Sequence[str]]]
    """Service name -> (entrypoint port, replica URLs)."""
    ready_timeout: float = 30.0

    @property
    def static_file(self) -> Path:
        return self.work_dir / "traefik.yml"

    @property
    def dynamic_file(self) -> Path:
        return self.work_dir / "dynamic.yml"

    def url(self, name: str) -> str:
        return f"http://{LOCALHOST}:{self.services[name][0]}"

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        edge = yaml.safe_load((default_config_dir() / "traefik.yml").read_text(encoding="utf-8"))
        http = edge["entryPoints"]["web"].get("http", {})
        for path, data in (
            (self.dynamic_file, dynamic_config(self.services)),
            (self.static_file, static_config(self.ping_port, self.services, self.dynamic_file, http)),
        ):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("# Generated by interloper-stack - do not edit.\n" + yaml.safe_dump(data, sort_keys=False))
            tmp.replace(path)

    def is_ready(self) -> bool:
        """Ping, and every balanced service answering through its entrypoint."""
        return http_ok(f"http://{LOCALHOST}:{self.ping_port}/ping") and all(
            http_ok(f"{self.url(name)}/healthz") for name in self.services
        )

    def spec(self, env: Mapping[str, str] | None = None) -> ProcessSpec:
        return ProcessSpec(
            name=BALANCER,
            argv=[str(traefik_binary()), f"--configFile={self.static_file}"],
            env=dict(os.environ if env is None else env),
            cwd=str(self.work_dir.parent),
            ready=self.is_ready,
            ready_timeout=self.ready_timeout,
            prepare=self.prepare,
            address="  ".join(f"{name} {self.url(name)}" for name in self.services),
            info={
                "urls": {name: self.url(name) for name in self.services},
                "servers": {name: list(servers) for name, (_, servers) in self.services.items()},
                "ping_url": f"http://{LOCALHOST}:{self.ping_port}/ping",
                "ports": {"ping": self.ping_port, **{name: port for name, (port, _) in self.services.items()}},
            },
        )
