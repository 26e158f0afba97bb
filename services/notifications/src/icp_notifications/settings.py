"""Settings of the notifications service.

SMTP keeps the reference's names (`INTERLOPER_SMTP_HOST/PORT/USER/PASSWORD/FROM_ADDR`, spec 1.4)
and adds the transport security, certificate verification, a timeout and the retry policy.
The JetStream side (which stream and subject to consume, the durable consumer's name, the
dead-letter subjects) is `INTERLOPER_NOTIFICATIONS_*`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from icp_common.contracts import ALERT_SUBJECT_PREFIX, DEAD_LETTER_ALERT, DEAD_LETTER_INVITATION, INVITATION_CREATED
from icp_common.settings import ServiceSettings

Security = Literal["starttls", "tls", "none"]


class SmtpSettings(BaseSettings):
    """The outgoing mail server. No host = e-mail disabled (events are acknowledged, a warning
    is logged once)."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_SMTP_", extra="ignore")

    host: str = Field("", description="SMTP server host; empty disables e-mail")
    port: int = Field(587, description="SMTP server port")
    user: str = Field("", description="SMTP user; login happens only when it is set")
    password: SecretStr = Field(SecretStr(""), description="SMTP password")
    from_addr: str = Field("noreply@interloper.dev", description="Envelope sender and From header")
    security: Security | None = Field(
        None,
        description="starttls (mandatory STARTTLS), tls (implicit TLS) or none; default: tls on 465, else starttls",
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate and host name")
    ca_file: str = Field("", description="PEM file of CA certificates to trust instead of the system's")
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of each SMTP operation")
    max_attempts: int = Field(8, ge=1, description="Delivery attempts before a message is dead-lettered")
    retry_initial_seconds: float = Field(15.0, gt=0, description="Delay before the first retry (then doubled)")
    retry_max_seconds: float = Field(1800.0, gt=0, description="Upper bound of the delay between retries")

    @property
    def enabled(self) -> bool:
        return bool(self.host.strip())

    @property
    def effective_security(self) -> Security:
        if self.security is not None:
            return self.security
        return "tls" if self.port == 465 else "starttls"


class ConsumerSettings(BaseSettings):
    """Where the invitation events come from and where failed ones go."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_NOTIFICATIONS_", extra="ignore")

    stream: str = Field("IDENTITY", description="JetStream stream holding the identity events")
    subject: str = Field(INVITATION_CREATED, description="Subject of the invitation events")
    durable: str = Field("notifications-invitations", description="Name of the durable pull consumer")
    concurrency: int = Field(4, ge=1, description="Messages handled at the same time by one process")
    ack_wait_seconds: float = Field(
        0.0, ge=0, description="JetStream ack wait; 0 = derived from the SMTP timeout (2 x timeout + 30 s)"
    )
    max_ack_pending: int = Field(1000, ge=1, description="Unacknowledged messages (incl. waiting retries)")
    dead_letter_stream: str = Field("NOTIFICATIONS_DEAD", description="JetStream stream of dead letters")
    dead_letter_prefix: str = Field(
        "notifications.dead", description="Dead letters go to <prefix>.invitation (stream subjects <prefix>.>)"
    )
    dead_letter_max_age_days: float = Field(30, gt=0, description="How long dead letters are kept")

    @property
    def dead_letter_subject(self) -> str:
        return f"{self.dead_letter_prefix}.{DEAD_LETTER_INVITATION}"

    @property
    def alert_dead_letter_subject(self) -> str:
        return f"{self.dead_letter_prefix}.{DEAD_LETTER_ALERT}"


class AlertSettings(BaseSettings):
    """Failure alerts: where the pipelines events come from, webhook delivery and its limits."""

    model_config = SettingsConfigDict(env_prefix="INTERLOPER_ALERTS_", extra="ignore")

    allow_private_targets: bool = Field(
        False, description="Allow webhooks to loopback, private, link-local and other non-global addresses"
    )
    stream: str = Field("PIPELINES", description="JetStream stream holding the pipelines alert events")
    subject: str = Field(f"{ALERT_SUBJECT_PREFIX}.>", description="Subjects of the alert events")
    durable: str = Field("notifications-alerts", description="Name of the durable pull consumer")
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one webhook request")
    max_attempts: int = Field(8, ge=1, description="Attempts per target before it is dead-lettered")
    retry_initial_seconds: float = Field(15.0, gt=0, description="Delay before the first retry (then doubled)")
    retry_max_seconds: float = Field(1800.0, gt=0, description="Upper bound of the delay between retries")
    max_rules: int = Field(50, ge=1, description="Alert rules per organisation")


class Settings(ServiceSettings):
    http_port: int = 8103
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    notifications: ConsumerSettings = Field(default_factory=ConsumerSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    def ack_wait_seconds(self) -> float:
        configured = self.notifications.ack_wait_seconds
        return configured if configured > 0 else 2 * self.smtp.timeout_seconds + 30
