"""Settings shared by every service: one base class, small nested groups, env prefix INTERLOPER_.

Each group is its own BaseSettings with its own prefix so the variable names match the
reference (INTERLOPER_POSTGRES_HOST, ...). Build settings once in main()/create_app() and
pass them down; nothing reads the environment at import time.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PostgresSettings(BaseSettings):
    """Connection to the PostgreSQL server; each service uses its own database on it."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_POSTGRES_", extra="ignore")

    host: str = Field("127.0.0.1", description="PostgreSQL host")
    port: int = Field(5432, description="PostgreSQL port")
    user: str = Field("postgres", description="PostgreSQL user")
    password: SecretStr = Field(SecretStr(""), description="PostgreSQL password")
    database: str = Field("", description="Database name; empty means interloper_<service>")
    pool_size: int = Field(10, description="Connections per service process, opened at start and kept open")

    def database_name(self, service: str) -> str:
        return self.database or f"interloper_{service.replace('-', '_')}"

    def url(self, database: str) -> str:
        password = self.password.get_secret_value()
        auth = quote(self.user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"postgresql+asyncpg://{auth}@{self.host}:{self.port}/{database}"


class NatsSettings(BaseSettings):
    """The NATS server and this service's own NATS user (each service has one, with permissions
    on its subjects only; credentials may also be given in the URL, nats://user:password@host)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_NATS_", extra="ignore")

    url: str = Field("nats://127.0.0.1:4222", description="NATS server URL(s), comma separated")
    user: str = Field("", description="This service's NATS user (empty: from the URL, or none)")
    password: SecretStr = Field(SecretStr(""), description="This service's NATS password")
    tls_ca_file: str = Field("", description="PEM CA bundle to verify the NATS server (tls:// URLs)")
    stream_replicas: int = Field(
        1, ge=1, le=5, description="Replicas of the JetStream streams this process creates (3 on a 3-server cluster)"
    )

    def username(self) -> str:
        """The NATS user this process connects as ('' when anonymous)."""
        if self.user:
            return self.user
        for server in self.url.split(","):
            name = urlsplit(server.strip()).username
            if name:
                return unquote(name)
        return ""

    def inbox_prefix(self) -> str:
        """Per-user reply subjects, so a user's permissions can stop it reading others' replies."""
        name = self.username()
        return f"_INBOX.{name}" if name else "_INBOX"

    def display_url(self) -> str:
        """The URL(s) without credentials, for logs and health details."""
        shown = []
        for server in self.url.split(","):
            parts = urlsplit(server.strip())
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            shown.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
        return ",".join(shown)


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOPER_LOG_", extra="ignore")

    level: str = Field("INFO", description="Log level")
    format: str = Field("json", description="json (one JSON object per line) or text")


class AccessLogSettings(BaseSettings):
    """Per-request log lines of every HTTP hop. Traefik keeps the access log at the edge, so by
    default a service logs only failed (5xx) and slow requests: a line per request costs CPU on
    every hop (issue 17)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_", extra="ignore")

    access_log: bool = Field(False, description="Log every request (INFO), not only 5xx and slow ones")
    slow_request_ms: float = Field(500.0, ge=0, description="Requests at least this slow are logged (WARNING)")


class MetricsSettings(BaseSettings):
    """What `/metrics` samples in the background (icp_common.metrics)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_METRICS_", extra="ignore")

    interval_seconds: float = Field(
        15.0, ge=0, description="Seconds between samples of the database, outbox and consumers (0 = never)"
    )
    nats_monitor_url: str = Field(
        "", description="nats-server monitoring URL (-m) to translate /varz and /jsz into this process's /metrics"
    )


class AddressBook(BaseSettings):
    """Where every component listens; given to every process by the launcher/compose/k8s."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_", extra="ignore")

    identity_url: str = "http://127.0.0.1:8101"
    identity_grpc_target: str = "127.0.0.1:9101"
    pipelines_url: str = "http://127.0.0.1:8102"
    pipelines_grpc_target: str = "127.0.0.1:9102"
    scheduler_url: str = ""
    worker_url: str = ""
    notifications_url: str = ""
    agent_url: str = ""


class ServiceSettings(BaseSettings):
    """Base of every service's Settings: listen addresses, shared secret, infrastructure."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address of this process's HTTP server")
    http_port: int = Field(8000, description="Port of this process's HTTP server")
    grpc_port: int = Field(0, description="Port of this process's gRPC server (0 = none)")
    internal_secret: SecretStr = Field(
        SecretStr(""),
        description="Shared internal credential: signs identity assertions, authenticates internal calls",
    )
    identity_ttl_seconds: int = Field(30, description="Lifetime of a signed identity assertion")
    public_url: str = Field("http://127.0.0.1:8080", description="Public base URL (links in e-mails)")
    data_dir: str = Field(".data", description="Directory for local state (local stack only)")

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    addresses: AddressBook = Field(default_factory=AddressBook)

    def require_secret(self) -> bytes:
        secret = self.internal_secret.get_secret_value()
        if not secret:
            raise SystemExit(
                "INTERLOPER_INTERNAL_SECRET is not set: every service needs the same random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        return secret.encode()
