"""Prometheus metrics of the notifications service (exposed by `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EMAILS_SENT = Counter("icp_notifications_emails_sent_total", "E-mails accepted by the SMTP server", ["kind"])
SEND_FAILURES = Counter(
    "icp_notifications_send_failures_total",
    "Failed delivery attempts (reason: transient, permanent, invalid)",
    ["kind", "reason"],
)
DEAD_LETTERS = Counter("icp_notifications_dead_letters_total", "Messages given up and dead-lettered", ["kind"])
EVENTS_SKIPPED = Counter(
    "icp_notifications_events_skipped_total",
    "Events acknowledged without sending (reason: duplicate, smtp_disabled, expired)",
    ["kind", "reason"],
)
INVALID_EVENTS = Counter(
    "icp_notifications_invalid_events_total", "Undecodable events, terminated without retry", ["subject"]
)
HANDLER_ERRORS = Counter(
    "icp_notifications_handler_errors_total", "Unexpected errors while handling a message (retried)", ["subject"]
)
SEND_SECONDS = Histogram(
    "icp_notifications_smtp_send_seconds",
    "Duration of one SMTP delivery attempt",
    ["kind", "result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EMAIL_DELIVERIES = Counter(
    "icp_notifications_email_deliveries_total",
    "E-mail delivery attempts by kind (invitation, alert) and outcome (sent; retry: failed, tried again; dead:"
    " given up; duplicate, skipped: not sent)",
    ["kind", "outcome"],
)
for _kind in ("invitation", "alert"):  # every series from the start: rates and alerts need no first event
    for _outcome in ("sent", "retry", "dead"):
        EMAIL_DELIVERIES.labels(_kind, _outcome)
ALERTS_DELIVERED = Counter(
    "icp_notifications_alerts_total",
    "Alert deliveries per target kind (email, webhook) and outcome (sent, duplicate, skipped, retry, dead)",
    ["target", "outcome"],
)
