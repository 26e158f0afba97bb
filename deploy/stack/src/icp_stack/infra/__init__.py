"""Process helpers for the infrastructure of the stack: PostgreSQL, NATS JetStream, Traefik.

Each helper describes its process as a :class:`ProcessSpec` (usable by the supervisor) and can run
on its own through :class:`ManagedProcess` (pytest fixtures, scripts).
"""

from icp_stack.infra.nats import NatsServer, nats_server_binary
from icp_stack.infra.postgres import (
    PG_SYSTEM_USER,
    PostgresServer,
    acreate_database,
    adrop_database,
    create_database,
    drop_database,
    ensure_system_user,
)
from icp_stack.infra.process import (
    ComponentError,
    ManagedProcess,
    ProcessSpec,
    child_preexec,
    http_ok,
    kill_group,
    popen_kwargs,
    tail_file,
    tcp_open,
    wait_ready,
)
from icp_stack.infra.traefik import TraefikProxy, default_config_dir, render_static_config, traefik_binary

__all__ = [
    "PG_SYSTEM_USER",
    "ComponentError",
    "ManagedProcess",
    "NatsServer",
    "PostgresServer",
    "ProcessSpec",
    "TraefikProxy",
    "acreate_database",
    "adrop_database",
    "child_preexec",
    "create_database",
    "default_config_dir",
    "drop_database",
    "ensure_system_user",
    "http_ok",
    "kill_group",
    "nats_server_binary",
    "popen_kwargs",
    "render_static_config",
    "tail_file",
    "tcp_open",
    "traefik_binary",
    "wait_ready",
]
