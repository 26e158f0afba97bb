"""``interloper-stack up``: the whole control plane on one machine, in the foreground.

Components (in dependency order): postgres, nats, identity, pipelines, pipelines-scheduler,
pipelines-worker, notifications, agent, gateway, traefik. Every service process gets all its
configuration from ``INTERLOPER_*`` environment variables (see :func:`service_env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from icp_stack import demo as demo_pipeline
from icp_stack.assistant import assistant_status
from icp_stack.console import TextConsole
from icp_stack.infra.balancer import BALANCER, InternalBalancer
from icp_stack.infra.nats import STACK_GOMEMLIMIT, NatsServer, read_or_create_passwords
from icp_stack.infra.postgres import PostgresServer
from icp_stack.infra.process import ComponentError, ProcessSpec, http_ok, tcp_open
from icp_stack.infra.traefik import TraefikProxy, tracing_config
from icp_stack.ports import LOCALHOST, free_ports, port_is_free
from icp_stack.supervisor import Supervisor


@dataclass(frozen=True)
class ServiceDef:
    """A service process of the control plane."""

    name: str
    command: tuple[str, ...]
    url_env: str
    grpc_env: str | None
    deps: tuple[str, ...]

    @property
    def has_grpc(self) -> bool:
        return self.grpc_env is not None


# ``deps`` are what a process needs *ready* before it starts (each starts as soon as they are):
# identity, pipelines and notifications only need PostgreSQL and NATS (streams are ensured
# idempotently by whoever comes first); the scheduler and the worker share the pipelines database,
# whose migrations the pipelines API runs; the agent calls identity and pipelines over gRPC; the
# gateway fronts them all; Traefik fronts the gateway. The mail catcher (an SMTP server saving
# every message under <data-dir>/mail: `interloper-notifications mailcatcher`) receives the
# notifications service's e-mails unless INTERLOPER_SMTP_HOST points elsewhere.
SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef(
        "identity",
        ("interloper-identity", "serve"),
        "INTERLOPER_IDENTITY_URL",
        "INTERLOPER_IDENTITY_GRPC_TARGET",
        ("postgres", "nats"),
    ),
    ServiceDef(
        "pipelines",
        ("interloper-pipelines", "serve"),
        "INTERLOPER_PIPELINES_URL",
        "INTERLOPER_PIPELINES_GRPC_TARGET",
        ("postgres", "nats"),
    ),
    ServiceDef(
        "pipelines-scheduler",
        ("interloper-pipelines", "scheduler"),
        "INTERLOPER_SCHEDULER_URL",
        None,
        ("postgres", "nats", "pipelines"),
    ),
    ServiceDef(
        "pipelines-worker",
        ("interloper-pipelines", "worker"),
        "INTERLOPER_WORKER_URL",
        None,
        ("postgres", "nats", "pipelines"),
    ),
    ServiceDef(
        "notifications",
        ("interloper-notifications", "serve"),
        "INTERLOPER_NOTIFICATIONS_URL",
        None,
        ("postgres", "nats", "mailcatcher"),
    ),
    ServiceDef(
        "agent",
        ("interloper-agent", "serve"),
        "INTERLOPER_AGENT_URL",
        None,
        ("postgres", "nats", "identity", "pipelines"),
    ),
    ServiceDef(
        "gateway",
        ("interloper-gateway", "serve"),
        "INTERLOPER_GATEWAY_URL",
        None,
        ("nats", "identity", "pipelines", "notifications", "agent"),
    ),
)
SERVICE_BY_NAME = {s.name: s for s in SERVICES}
COMPONENTS: tuple[str, ...] = ("postgres", "nats", "mailcatcher", *(s.name for s in SERVICES), "traefik")
MAILCATCHER_COMMAND = ("interloper-notifications", "mailcatcher")
TRAEFIK_DEPS = ("gateway",)
DEMO_NEEDS = ("identity", "pipelines", "pipelines-worker", "gateway", "traefik")

# Port keys: one per listening socket the launcher chooses.
PORT_KEYS: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "nats": ("nats", "nats-monitor"),
    "mailcatcher": ("mailcatcher",),
    "identity": ("identity", "identity-grpc"),
    "pipelines": ("pipelines", "pipelines-grpc"),
    "pipelines-scheduler": ("pipelines-scheduler",),
    "pipelines-worker": ("pipelines-worker",),
    "notifications": ("notifications",),
    "agent": ("agent",),
    "gateway": ("gateway",),
    "traefik": ("traefik-ping",),
}
# --replicas: how many processes of a service (each its own ports, log file and supervision).
MAX_REPLICAS = 8


def replica_name(name: str, index: int) -> str:
    """The component name of replica ``index`` (1-based): the first keeps the plain name."""
    return name if index == 1 else f"{name}-{index}"


def replica_port_keys(name: str, replicas: int = 1) -> tuple[str, ...]:
    """The port keys of every replica of ``name`` (``identity-2``, ``identity-2-grpc``, ...)."""
    keys = list(PORT_KEYS[name])
    for index in range(2, replicas + 1):
        keys += [replica_name(name, index) + key[len(name) :] for key in PORT_KEYS[name]]
    return tuple(keys)


def balanced_services(enabled: Sequence[str], replicas: Mapping[str, int]) -> tuple[str, ...]:
    """Services reached over HTTP through the internal balancer: those run as several replicas.
    The gateway's replicas are balanced by the edge Traefik instead; a single replica is called
    directly (no extra hop)."""
    return tuple(s.name for s in SERVICES if s.name != "gateway" and s.name in enabled and replicas.get(s.name, 1) > 1)


USER_DEFAULTS_WIN = (
    "INTERLOPER_INTERNAL_SECRET",
    "INTERLOPER_PUBLIC_URL",
    "INTERLOPER_AUTH_COOKIE_SECURE",
    "INTERLOPER_AUTH_DEV_LOGIN",
    "INTERLOPER_CATALOG",
)


def demo_catalog() -> str:
    """The pipelines service's own demo components, so a newcomer has something to build with: the
    list the demo package names (the stack runs the services from this environment; imported here,
    not at module level, so the launcher and its pytest plugin do not load the pipelines code)."""
    from icp_pipelines.demo import CATALOG_PATHS

    return json.dumps(CATALOG_PATHS)


class StackError(RuntimeError):
    """A configuration problem found before anything was started."""


@dataclass
class StackOptions:
    data_dir: Path = Path(".data")
    http_port: int = 8080
    http_host: str = LOCALHOST
    fresh: bool = False
    without: frozenset[str] = frozenset()
    ports: dict[str, int] = field(default_factory=dict)
    bin_dir: Path | None = None
    ready_timeout: float = 60.0
    color: bool | None = None
    environ: Mapping[str, str] | None = None
    log_format: str = "json"
    """What the console shows: "json" (the processes' lines as is) or "text" (see icp_stack.console)."""
    demo: bool = False
    """Set up the demo organisation and pipeline once everything is ready (see icp_stack.demo)."""
    demo_email: str = demo_pipeline.DEMO_EMAIL
    replicas: dict[str, int] = field(default_factory=dict)
    """--replicas: processes per service (absent: 1)."""


def parse_replicas(items: Sequence[str]) -> dict[str, int]:
    """``["gateway=2,pipelines-worker=3"]`` -> {"gateway": 2, "pipelines-worker": 3}."""
    names = ", ".join(SERVICE_BY_NAME)
    result: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in SERVICE_BY_NAME:
                raise StackError(f"bad replica setting {part!r}: expected NAME=N with NAME one of {names}")
            try:
                count = int(value)
            except ValueError:
                count = 0
            if not 1 <= count <= MAX_REPLICAS:
                raise StackError(f"bad replica count in {part!r}: expected a whole number from 1 to {MAX_REPLICAS}")
            result[key] = count
    return result


def parse_ports(items: Sequence[str]) -> dict[str, int]:
    """``["gateway=18000", "postgres=5432,nats=4222"]`` -> {"gateway": 18000, ...}."""
    known = {key for keys in PORT_KEYS.values() for key in keys}
    result: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise StackError(f"bad port setting {part!r}: expected NAME=PORT with NAME in {sorted(known)}")
            try:
                port = int(value)
            except ValueError:
                raise StackError(f"bad port number in {part!r}") from None
            if not 0 < port < 65536:
                raise StackError(f"bad port number in {part!r}")
            result[key] = port
    return result


def parse_without(items: Sequence[str]) -> frozenset[str]:
    names = {n.strip() for item in items for n in item.split(",") if n.strip()}
    unknown = names - set(COMPONENTS)
    if unknown:
        raise StackError(
            f"unknown component(s) in --without: {', '.join(sorted(unknown))} (known: {', '.join(COMPONENTS)})"
        )
    return frozenset(names)


def default_bin_dir() -> Path:
    # Not resolved: .venv/bin/python is a symlink to the base interpreter.
    return Path(sys.executable).parent


# ----------------------------------------------------------------------------------- the plan


@dataclass
class Planned:
    name: str
    spec: ProcessSpec
    deps: tuple[str, ...]
    info: dict[str, Any]


@dataclass
class StackPlan:
    options: StackOptions
    data_dir: Path
    public_url: str
    ports: dict[str, int]
    enabled: tuple[str, ...]
    components: list[Planned]
    env: dict[str, str]
    replicas: dict[str, int] = field(default_factory=dict)

    def instances(self, name: str) -> tuple[str, ...]:
        """The component names of every replica of ``name`` (just ``name`` for most)."""
        return tuple(replica_name(name, i) for i in range(1, self.replicas.get(name, 1) + 1))

    def env_of(self, name: str) -> dict[str, str]:
        """The complete environment a planned component runs with (its own database role, NATS user)."""
        env = next(c.spec.env for c in self.components if c.name == name)
        return dict(env if env is not None else self.env)


def _read_or_create_secret(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    tmp.replace(path)
    return value


def choose_ports(
    enabled: Sequence[str],
    configured: Mapping[str, int],
    http_port: int,
    replicas: Mapping[str, int] | None = None,
) -> dict[str, int]:
    replicas = replicas or {}
    wanted = [key for name in enabled for key in replica_port_keys(name, replicas.get(name, 1))]
    balanced = balanced_services(enabled, replicas)
    if balanced:
        wanted += [f"{name}-balancer" for name in balanced] + [f"{BALANCER}-ping"]
    taken = {http_port, *configured.values()}
    missing = [k for k in wanted if k not in configured]
    picked: list[int] = []
    while len(picked) < len(missing):
        for port in free_ports(len(missing) - len(picked)):
            if port not in taken:
                picked.append(port)
                taken.add(port)
    ports = {k: configured[k] for k in wanted if k in configured}
    ports.update(zip(missing, picked, strict=True))
    ports["http"] = http_port
    return ports


def service_url(ports: Mapping[str, int], name: str) -> str:
    return f"http://{LOCALHOST}:{ports[name]}"


def base_env(
    plan_ports: Mapping[str, int],
    enabled: Sequence[str],
    data_dir: Path,
    public_url: str,
    secret: str,
    environ: Mapping[str, str],
    replicas: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Environment shared by every service process (the launcher's own environment passes through)."""
    replicas = replicas or {}
    balanced = balanced_services(enabled, replicas)
    env = dict(environ)
    defaults = {
        "INTERLOPER_INTERNAL_SECRET": secret,
        "INTERLOPER_PUBLIC_URL": public_url,
        "INTERLOPER_AUTH_COOKIE_SECURE": "false",
        "INTERLOPER_AUTH_DEV_LOGIN": "true",
        "INTERLOPER_CATALOG": demo_catalog(),
        # Within the supervisor's 5 s stop grace; the reaper covers anything cut short.
        "INTERLOPER_WORKER_SHUTDOWN_GRACE": "3",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["INTERLOPER_HTTP_HOST"] = LOCALHOST
    if any(env.get(k) for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        # Calls between the processes of the stack never go through a proxy of the user's.
        for key in ("NO_PROXY", "no_proxy"):
            current = [h for h in env.get(key, "").split(",") if h.strip()]
            env[key] = ",".join([*current, *(h for h in ("127.0.0.1", "localhost", "::1") if h not in current)])
    env["INTERLOPER_DATA_DIR"] = str(data_dir)
    if "postgres" in enabled:
        env.update(
            {
                "INTERLOPER_POSTGRES_HOST": LOCALHOST,
                "INTERLOPER_POSTGRES_PORT": str(plan_ports["postgres"]),
            }
        )
        # Each service connects as its own role (service_env), never as the superuser.
        env.pop("INTERLOPER_POSTGRES_USER", None)
        env.pop("INTERLOPER_POSTGRES_PASSWORD", None)
    if "nats" in enabled:
        env["INTERLOPER_NATS_URL"] = f"nats://{LOCALHOST}:{plan_ports['nats']}"
    if "mailcatcher" in enabled:
        env["INTERLOPER_SMTP_HOST"] = LOCALHOST
        env["INTERLOPER_SMTP_PORT"] = str(plan_ports["mailcatcher"])
        env["INTERLOPER_SMTP_SECURITY"] = "none"
    for service in SERVICES:
        # The address book: only for components that run (others are not set by us).
        if service.name not in enabled:
            continue
        count = replicas.get(service.name, 1)
        # Several replicas: HTTP through the internal balancer, gRPC over every replica's address
        # (the client balances round robin: icp_common.grpc).
        url_key = f"{service.name}-balancer" if service.name in balanced else service.name
        env[service.url_env] = service_url(plan_ports, url_key)
        if service.grpc_env is not None:
            targets = [
                f"{LOCALHOST}:{plan_ports[replica_name(service.name, i) + '-grpc']}" for i in range(1, count + 1)
            ]
            env[service.grpc_env] = targets[0] if count == 1 else "ipv4:" + ",".join(targets)
    # Never let a stray value of ours reach a process that must not have it.
    env.pop("INTERLOPER_HTTP_PORT", None)
    env.pop("INTERLOPER_GRPC_PORT", None)
    return env


def nats_user_of(service: str) -> str | None:
    """The NATS user a service process connects as (the agent does not use NATS)."""
    if service.startswith("pipelines"):
        return "pipelines"
    return service if service in ("identity", "gateway", "notifications") else None


def pg_role_of(service: str) -> str | None:
    """The PostgreSQL role (= the database it owns) of a service process; the gateway has none."""
    if service.startswith("pipelines"):
        return "interloper_pipelines"
    return f"interloper_{service}" if service in ("identity", "notifications", "agent") else None


PG_ROLES = ("interloper_identity", "interloper_pipelines", "interloper_notifications", "interloper_agent")


def service_env(
    base: Mapping[str, str],
    service: ServiceDef,
    ports: Mapping[str, int],
    nats_passwords: Mapping[str, str] | None = None,
    pg_passwords: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> dict[str, str]:
    """The environment of ``service``'s process ``instance`` (a replica's name; default: the first)."""
    env = dict(base)
    instance = instance or service.name
    if pg_passwords:
        # Each service its own PostgreSQL role, owning only its database.
        role = pg_role_of(service.name)
        if role is not None:
            env["INTERLOPER_POSTGRES_USER"] = role
            env["INTERLOPER_POSTGRES_PASSWORD"] = pg_passwords[role]
    if nats_passwords:
        # Each service its own NATS user; never another's (and no NATS credentials where unused).
        env.pop("INTERLOPER_NATS_USER", None)
        env.pop("INTERLOPER_NATS_PASSWORD", None)
        user = nats_user_of(service.name)
        if user is not None:
            env["INTERLOPER_NATS_USER"] = user
            env["INTERLOPER_NATS_PASSWORD"] = nats_passwords[user]
    env["INTERLOPER_HTTP_PORT"] = str(ports[instance])
    if service.has_grpc:
        env["INTERLOPER_GRPC_PORT"] = str(ports[instance + "-grpc"])
    if service.name == "pipelines-scheduler" and instance == service.name and "nats-monitor" in ports:
        # No exporter container locally: the (first) scheduler translates nats-server's monitoring
        # endpoint (/varz, /jsz) into its /metrics (icp_common.nats_monitor).
        env["INTERLOPER_METRICS_NATS_MONITOR_URL"] = f"http://{LOCALHOST}:{ports['nats-monitor']}"
    return env


def build_plan(options: StackOptions) -> StackPlan:
    """Everything to start, with ports, environments and readiness checks. Starts nothing."""
    environ = dict(os.environ if options.environ is None else options.environ)
    data_dir = options.data_dir.absolute()
    enabled = tuple(c for c in COMPONENTS if c not in options.without)
    if "notifications" not in enabled or environ.get("INTERLOPER_SMTP_HOST"):
        enabled = tuple(c for c in enabled if c != "mailcatcher")  # nobody to send it mail
    bin_dir = options.bin_dir or default_bin_dir()
    if left_out := sorted(name for name in options.replicas if name not in enabled):
        raise StackError(f"--replicas names {', '.join(left_out)}, left out with --without")
    replicas = {name: count for name, count in options.replicas.items() if count > 1}

    if options.demo and (needed := [c for c in DEMO_NEEDS if c not in enabled]):
        raise StackError(f"--demo needs {', '.join(needed)} (left out with --without)")
    missing = []
    for service in SERVICES:
        if service.name in enabled and not os.access(bin_dir / service.command[0], os.X_OK):
            missing.append(f"  {service.name}: {bin_dir / service.command[0]} ({' '.join(service.command)})")
    if missing:
        raise StackError(
            "these services are not installed (their console scripts are missing):\n"
            + "\n".join(missing)
            + "\nrun `uv sync` if they exist in the workspace, or leave them out with --without NAME,..."
        )

    for key, port in [("http", options.http_port), *options.ports.items()]:
        if not port_is_free(port, LOCALHOST if key != "http" else options.http_host):
            hint = " (another port: `make run HTTP_PORT=8090` or `--http-port 8090`)" if key == "http" else ""
            raise StackError(f"port {port} ({key}) is already in use on this machine{hint}")
    ports = choose_ports(enabled, options.ports, options.http_port, replicas)
    public_url = f"http://{LOCALHOST}:{options.http_port}"
    secret = environ.get("INTERLOPER_INTERNAL_SECRET") or _read_or_create_secret(data_dir / "internal-secret")
    env = base_env(ports, enabled, data_dir, public_url, secret, environ, replicas)
    public_url = env["INTERLOPER_PUBLIC_URL"]

    plan = StackPlan(options, data_dir, public_url, ports, enabled, [], env, replicas)
    balanced = balanced_services(enabled, replicas)
    for name in enabled:
        # A dependency on a service is one on every replica of it.
        deps = tuple(i for d in _deps_of(name) if d in enabled for i in plan.instances(d))
        if name == "gateway" and balanced:
            balancer = _balancer_spec(plan, balanced)
            balancer_deps = tuple(i for b in balanced for i in plan.instances(b))
            plan.components.append(Planned(BALANCER, balancer, balancer_deps, dict(balancer.info)))
            deps += (BALANCER,)
        if name in SERVICE_BY_NAME:
            count = replicas.get(name, 1)
            for index, instance in enumerate(plan.instances(name), start=1):
                spec = _service_spec(SERVICE_BY_NAME[name], instance, options, data_dir, ports, env, bin_dir, enabled)
                info = {**spec.info, "component": name, "replica": index, "replicas": count}
                plan.components.append(Planned(instance, spec, deps, info))
            continue
        spec = _component_spec(name, options, data_dir, ports, env, environ, bin_dir, enabled, plan)
        plan.components.append(Planned(name, spec, deps, dict(spec.info)))
    return plan


def _balancer_spec(plan: StackPlan, balanced: Sequence[str]) -> ProcessSpec:
    balancer = InternalBalancer(
        plan.data_dir / BALANCER,
        plan.ports[f"{BALANCER}-ping"],
        {
            name: (plan.ports[f"{name}-balancer"], [service_url(plan.ports, i) for i in plan.instances(name)])
            for name in balanced
        },
        ready_timeout=plan.options.ready_timeout,
    )
    return balancer.spec(env=plan.options.environ if plan.options.environ is not None else os.environ)


def nats_passwords(data_dir: Path) -> dict[str, str]:
    """The stack's NATS users' passwords (admin + one per service), made once per data dir."""
    return read_or_create_passwords(data_dir / "nats-users.json")


def pg_passwords(data_dir: Path) -> dict[str, str]:
    """The stack's PostgreSQL passwords (superuser + one role per service), made once per data dir."""
    return read_or_create_passwords(data_dir / "postgres-passwords.json", ("postgres", *PG_ROLES))


def _deps_of(name: str) -> tuple[str, ...]:
    if name in SERVICE_BY_NAME:
        return SERVICE_BY_NAME[name].deps
    if name == "traefik":
        return TRAEFIK_DEPS
    return ()


def _mailcatcher_spec(data_dir: Path, port: int, env: Mapping[str, str], bin_dir: Path, timeout: float) -> ProcessSpec:
    mail_dir = data_dir / "mail"
    return ProcessSpec(
        name="mailcatcher",
        argv=[
            str(bin_dir / MAILCATCHER_COMMAND[0]),
            *MAILCATCHER_COMMAND[1:],
            "--host",
            LOCALHOST,
            "--port",
            str(port),
            "--dir",
            str(mail_dir),
        ],
        env=env,
        cwd=os.getcwd(),
        ready=lambda: tcp_open(LOCALHOST, port),
        ready_timeout=timeout,
        address=f"smtp://{LOCALHOST}:{port} -> {mail_dir}",
        info={"smtp_url": f"smtp://{LOCALHOST}:{port}", "mail_dir": str(mail_dir), "ports": {"smtp": port}},
    )


def _component_spec(
    name: str,
    options: StackOptions,
    data_dir: Path,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    environ: Mapping[str, str],
    bin_dir: Path,
    enabled: Sequence[str],
    plan: StackPlan,
) -> ProcessSpec:
    if name == "postgres":
        passwords = pg_passwords(data_dir)
        pg = PostgresServer(
            data_dir / "postgres",
            ports["postgres"],
            durable=True,
            ready_timeout=max(options.ready_timeout, 60.0),
            password=passwords["postgres"],
            roles={role: passwords[role] for role in PG_ROLES},
        )
        return pg.spec(env=environ)
    if name == "nats":
        nats = NatsServer(
            data_dir / "nats",
            ports["nats"],
            ports["nats-monitor"],
            ready_timeout=options.ready_timeout,
            passwords=nats_passwords(data_dir),
            go_memory_limit=STACK_GOMEMLIMIT,
        )
        return nats.spec(env=environ)
    if name == "mailcatcher":
        return _mailcatcher_spec(data_dir, ports["mailcatcher"], env, bin_dir, options.ready_timeout)
    if name == "traefik":
        gateway = "gateway" in enabled
        traefik = TraefikProxy(
            data_dir / "traefik",
            options.http_port,
            ports["traefik-ping"],
            gateway_upstream=service_url(ports, "gateway") if gateway else None,
            gateway_upstreams=[service_url(ports, i) for i in plan.instances("gateway")] if gateway else None,
            host=options.http_host,
            health_path="/api/health" if gateway else None,
            ready_timeout=options.ready_timeout,
            tracing=tracing_config(environ),  # joins the services' traces when OTEL_* configure them
        )
        return traefik.spec(env=environ)
    raise ValueError(f"unknown component {name}")


def _service_spec(
    service: ServiceDef,
    name: str,
    options: StackOptions,
    data_dir: Path,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    bin_dir: Path,
    enabled: Sequence[str],
) -> ProcessSpec:
    """The process ``name`` (``service``'s name, or a replica's: ``pipelines-worker-2``)."""
    url = service_url(ports, name)
    info: dict[str, Any] = {"http_url": url, "url": url, "ports": {"http": ports[name]}}
    address = url
    if service.has_grpc:
        target = f"{LOCALHOST}:{ports[name + '-grpc']}"
        info["grpc_target"] = target
        info["ports"]["grpc"] = ports[name + "-grpc"]
        address += f"  grpc {target}"
    ready_url = f"{url}/readyz"
    return ProcessSpec(
        name=name,
        argv=[str(bin_dir / service.command[0]), *service.command[1:]],
        env=service_env(
            env,
            service,
            ports,
            nats_passwords(data_dir) if "nats" in enabled else None,
            pg_passwords(data_dir) if "postgres" in enabled else None,
            instance=name,
        ),
        cwd=os.getcwd(),
        ready=lambda: http_ok(ready_url),
        ready_timeout=options.ready_timeout,
        address=address,
        info=info,
    )


# ------------------------------------------------------------------------------ data directory


def _looks_like_stack_dir(path: Path) -> bool:
    markers = ("stack.lock", "internal-secret", "postgres", "nats", "stack.json", "logs", "traefik")
    entries = {p.name for p in path.iterdir()}
    return not entries or bool(entries & set(markers))


def lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = (data_dir / "stack.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise StackError(f"another interloper-stack (pid {holder}) is running with data dir {data_dir}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def wipe_data_dir(data_dir: Path) -> None:
    """``--fresh``: remove everything in the data dir except the lock file."""
    if not _looks_like_stack_dir(data_dir):
        raise StackError(f"refusing --fresh: {data_dir} does not look like a stack data directory")
    for entry in data_dir.iterdir():
        if entry.name == "stack.lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ------------------------------------------------------------------------------------ running


class StackRunner:
    def __init__(self, plan: StackPlan, out: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.plan = plan
        self.out = out if out is not None else sys.stderr
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stack_json = plan.data_dir / "stack.json"
        self._ready = False
        self.demo: demo_pipeline.DemoResult | None = None
        self.width = max(len(c) for c in (*COMPONENTS, *(p.name for p in plan.components)))
        self.supervisor = Supervisor(
            out=self.out,
            log_dir=plan.data_dir / "logs",
            color=plan.options.color,
            on_change=self._write_stack_json,
            prefix_width=self.width,
            render=TextConsole(self.width).render if plan.options.log_format == "text" else None,
        )
        for planned in plan.components:
            self.supervisor.add(planned.spec, planned.deps)

    def stack_info(self) -> dict[str, Any]:
        status = self.supervisor.status()
        components: dict[str, Any] = {}
        for planned in self.plan.components:
            st = status[planned.name]
            child = self.supervisor.children[planned.name]
            components[planned.name] = {
                "name": planned.name,
                "pid": st["pid"],
                "state": st["state"],
                "restarts": st["restarts"],
                "address": planned.spec.address,
                "log": str(child.log_path) if child.log_path else None,
                **planned.info,
            }
        return {
            "public_url": self.plan.public_url,
            "http_port": self.plan.options.http_port,
            "data_dir": str(self.plan.data_dir),
            "launcher_pid": os.getpid(),
            "ready": self._ready,
            "components": components,
            # Every replica's component name, per service run as several (--replicas).
            "replicas": {name: list(self.plan.instances(name)) for name in self.plan.replicas},
        }

    def _write_stack_json(self) -> None:
        if not self._ready:
            return
        tmp = self.stack_json.with_name("stack.json.tmp")
        tmp.write_text(json.dumps(self.stack_info(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.stack_json)

    def table(self) -> str:
        info = self.stack_info()["components"]
        width = self.width
        lines = [f"{'component':<{width}}  {'pid':>7}  address", f"{'-' * width}  {'-' * 7}  {'-' * 40}"]
        for name, comp in info.items():
            lines.append(f"{name:<{width}}  {comp['pid'] or '-':>7}  {comp['address']}")
        lines.append("")
        for label, value in self.summary():
            lines.append(f"{label:<{width}}  {'':>7}  {value}")
        return "\n".join(lines)

    def summary(self) -> list[tuple[str, str]]:
        """The labelled lines under the table: what a person needs to find their way in."""
        data, url = self.plan.data_dir, self.plan.public_url
        rows = [("web UI", url)]
        if self.plan.env.get("INTERLOPER_AUTH_DEV_LOGIN", "").lower() == "true":
            rows.append(("sign in (local)", f"{url}/api/auth/dev-login  (any e-mail; no Google needed)"))
        if "mailcatcher" in self.plan.enabled:
            rows.append(("mail folder", f"{data / 'mail'}  (every e-mail the stack sends, as .eml)"))
        rows.append(("demo output", f"{data / 'demo-output'}/<organisation id>/  (files of the Demo CSV destination)"))
        rows.append(("logs", f"{data / 'logs'}  (each process's every line; every request: gateway.log)"))
        rows.append(("API reference", f"{url}/api/docs"))
        if "agent" in self.plan.enabled:
            rows.append(("assistant", assistant_status(self.plan.env.get("INTERLOPER_AGENT_URL"))))
        if self.demo is not None:
            rows.append(
                ("demo", f"'{demo_pipeline.ORGANISATION}', job '{demo_pipeline.JOB}': sign in as {self.demo.email}")
            )
            if self.plan.env.get("INTERLOPER_AUTH_DEV_LOGIN", "").lower() == "true":
                rows.append(("demo sign-in", demo_pipeline.sign_in_link(url, self.demo.email)))
            rows.append(("demo files", str(data / "demo-output" / self.demo.organisation_id)))
        return rows

    async def set_up_demo(self) -> None:
        """--demo: failures are reported, the stack keeps running."""
        try:
            self.demo = await demo_pipeline.set_up(
                self.plan.public_url,
                self.plan.options.bin_dir or default_bin_dir(),
                # identity's own environment: its PostgreSQL role and password (the shared one has none).
                self.plan.env_of("identity"),
                self.plan.options.demo_email,
                self.supervisor.log,
            )
        except (demo_pipeline.DemoError, OSError) as exc:
            self.supervisor.log(f"ERROR: the demo pipeline was not set up: {exc}")

    async def run(self, stop: asyncio.Event) -> int:
        sup = self.supervisor
        t0 = time.monotonic()
        sup.log(f"starting the stack in {self.plan.data_dir} ({len(self.plan.components)} components)")
        start = asyncio.create_task(sup.start_all(), name="start-all")
        stopper = asyncio.create_task(stop.wait(), name="stop-wait")
        code = 0
        try:
            await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if start.done() and not start.cancelled() and start.exception() is None:
                self._ready = True
                self._write_stack_json()
                if self.plan.options.demo:
                    await self.set_up_demo()
                self.out.write(self.table() + "\n")
                sup.log(f"all components ready in {time.monotonic() - t0:.1f} s")
                self.out.flush()
                self.stdout.write(f"READY {self.plan.public_url}\n")
                self.stdout.flush()
                await stopper
                sup.log("stopping the stack")
            elif start.done() and not start.cancelled():
                exc = start.exception()
                sup.log(f"ERROR: the stack did not start: {exc}")
                code = 1
            else:
                sup.log("interrupted while starting: stopping")
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await start
        finally:
            stopper.cancel()
            t1 = time.monotonic()
            await sup.stop_all()
            self._ready = False
            with contextlib.suppress(FileNotFoundError):
                self.stack_json.unlink()
            sup.log(f"stack stopped in {time.monotonic() - t1:.1f} s")
        return code


async def run_stack(options: StackOptions, out: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the stack until SIGINT/SIGTERM/SIGHUP. Returns the process exit code."""
    err = out if out is not None else sys.stderr
    data_dir = options.data_dir.absolute()
    try:
        lock = lock_data_dir(data_dir)
    except StackError as exc:
        err.write(f"interloper-stack: error: {exc}\n")
        return 2
    try:
        if options.fresh:
            wipe_data_dir(data_dir)
        (data_dir / "stack.json").unlink(missing_ok=True)
        plan = build_plan(options)
    except (StackError, ComponentError) as exc:
        err.write(f"interloper-stack: error: {exc}\n")
        lock.close()
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        runner = StackRunner(plan, out=err, stdout=stdout)
        return await runner.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        lock.close()
