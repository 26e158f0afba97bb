"""What an alert says: e-mail (plain text), Slack `{"text"}` and the generic JSON body. Every form
names the job, the run, the partition, the first error and links to the run in the web UI
(`<public url>/executions/runs/<run id>`, a backfill `/executions/backfills/<id>`)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from icp_common.contracts import PipelineAlert

from ..invitations.rendering import one_line, recipient_address

_TITLES = {"run_failed": "Run failed", "backfill_failed": "Backfill finished with failures", "run_stuck": "Run stuck"}
MAX_ERROR_IN_TITLE = 200


def run_url(public_url: str, event: PipelineAlert) -> str:
    base = public_url.rstrip("/")
    if event.kind == "backfill_failed" and event.backfill_id is not None:
        return f"{base}/executions/backfills/{event.backfill_id}"
    return f"{base}/executions/runs/{event.run_id}" if event.run_id else f"{base}/executions"


def _job(event: PipelineAlert) -> str:
    return one_line(event.job_name) or (str(event.job_id) if event.job_id else "(deleted job)")


def title(event: PipelineAlert) -> str:
    partition = f" ({event.partition_date})" if event.partition_date else ""
    stuck = f" for {event.stuck_minutes} min" if event.kind == "run_stuck" else ""
    return f"{_TITLES.get(event.kind, event.kind)}{stuck}: {_job(event)}{partition}"


def text(event: PipelineAlert, public_url: str) -> str:
    lines = [
        title(event),
        "",
        f"Job: {_job(event)}",
        f"Run: {event.run_id or '-'}",
        f"Partition: {event.partition_date or '-'}",
    ]
    if event.kind == "backfill_failed":
        lines += [f"Backfill: {event.backfill_id}", f"Failed partitions: {event.failed_runs}"]
    if event.kind == "run_stuck":
        lines.append(f"Running for more than {event.stuck_minutes} minutes")
    lines += [f"First error: {event.error or '-'}", "", f"Open: {run_url(public_url, event)}"]
    return "\n".join(lines) + "\n"


def slack_body(event: PipelineAlert, public_url: str) -> dict[str, Any]:
    error = one_line(event.error)[:MAX_ERROR_IN_TITLE] or "-"
    return {
        "text": f"*{title(event)}*\nRun {event.run_id or '-'}: {error}\n<{run_url(public_url, event)}|Open the run>"
    }


def json_body(event: PipelineAlert, public_url: str) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "kind": event.kind,
        "title": title(event),
        "organisation_id": str(event.org_id),
        "job": {"id": str(event.job_id) if event.job_id else None, "name": event.job_name},
        "run_id": str(event.run_id) if event.run_id else None,
        "backfill_id": str(event.backfill_id) if event.backfill_id else None,
        "partition_date": event.partition_date,
        "error": event.error,
        "failed_runs": event.failed_runs,
        "occurred_at": event.occurred_at.isoformat(),
        "stuck_minutes": event.stuck_minutes or None,
        "url": run_url(public_url, event),
    }


def email(event: PipelineAlert, recipient: str, *, public_url: str, from_addr: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_addr
    message["To"] = recipient_address(recipient)
    message["Subject"] = f"[Interloper] {title(event)}"[:250]
    message["Date"] = format_datetime(now)
    # Stable per event and recipient: a receiving server can recognise a re-sent copy.
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    domain = from_addr.rpartition("@")[2].strip(" >") or "interloper.invalid"
    message["Message-ID"] = f"<alert.{event.event_id}.{digest}@{domain}>"
    message.set_content(text(event, public_url))
    return message
