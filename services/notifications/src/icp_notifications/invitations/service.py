"""Delivering one invitation event, inside the message's transaction.

The event's `deliveries` row is locked first, so a duplicate or concurrent delivery of the same
event waits and then sees the outcome (a sent invitation is never mailed twice, unless the
commit after a successful send fails: at-least-once). The e-mail is sent while the row is
locked; the outcome is recorded in the same transaction, and a dead letter is written to the
outbox in it too."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ..db import outbox
from ..deliveries import repository
from ..deliveries.models import FINAL_STATUSES, Delivery, DeliveryStatus
from ..metrics import SEND_SECONDS
from ..settings import Settings, SmtpSettings
from ..smtp import Mailer, SendError
from .links import InvitationLinks, LinkUnavailable
from .rendering import InvalidMessage, build_message, message_id_for, render_invitation
from .schemas import KIND, DeadLetter, InvitationCreated

log = logging.getLogger(__name__)

Outcome = Literal["sent", "duplicate", "skipped", "expired", "retry", "dead"]
FailureReason = Literal["transient", "permanent", "invalid"]


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    attempts: int
    status: str
    delay: float = 0.0
    error: str | None = None
    failure: FailureReason | None = None


def retry_delay(attempts: int, smtp: SmtpSettings, *, jitter: float = 0.2) -> float:
    """Exponential backoff after `attempts` failed attempts, capped, with +-20 % jitter."""
    base = smtp.retry_initial_seconds * 2.0 ** max(attempts - 1, 0)
    return float(min(base, smtp.retry_max_seconds) * random.uniform(1 - jitter, 1 + jitter))


async def deliver_invitation(
    session: AsyncSession,
    event: InvitationCreated,
    *,
    mailer: Mailer,
    links: InvitationLinks,
    settings: Settings,
    now: datetime | None = None,
) -> DeliveryResult:
    delivery = await repository.lock(
        session,
        event.event_id,
        kind=KIND,
        recipient=event.email,
        invitation_id=event.invitation_id,
        org_id=event.org_id,
    )
    if delivery.status in FINAL_STATUSES:
        return DeliveryResult("duplicate", delivery.attempts, delivery.status)
    if not mailer.configured:
        await repository.record(session, delivery, DeliveryStatus.SKIPPED, error="SMTP not configured")
        return DeliveryResult("skipped", delivery.attempts, delivery.status)
    now = now or datetime.now(UTC)
    if event.expires_at <= now:
        await repository.record(session, delivery, DeliveryStatus.EXPIRED, error="invitation expired before sending")
        return DeliveryResult("expired", delivery.attempts, delivery.status)

    try:
        token = await links.issue(event.invitation_id)
    except LinkUnavailable as exc:  # counts as an attempt: identity down for good ends in a dead letter
        delivery.attempts += 1
        return await _retry_or_give_up(session, delivery, event, settings, str(exc), now)
    if token is None:  # accepted, revoked, replaced or expired since: nothing to mail
        await repository.record(session, delivery, DeliveryStatus.EXPIRED, error="invitation no longer pending")
        return DeliveryResult("expired", delivery.attempts, delivery.status)
    delivery.attempts += 1
    try:
        rendered = render_invitation(event, token=token, public_url=settings.public_url, now=now)
        message = build_message(
            rendered,
            from_addr=settings.smtp.from_addr,
            message_id=message_id_for(event.event_id, settings.smtp.from_addr),
            now=now,
        )
    except InvalidMessage as exc:
        return await _give_up(session, delivery, event, settings, str(exc), "invalid", now)

    started = time.perf_counter()
    try:
        await mailer.send(message)
    except SendError as exc:
        SEND_SECONDS.labels(KIND, "failed").observe(time.perf_counter() - started)
        if exc.permanent:
            return await _give_up(session, delivery, event, settings, str(exc), "permanent", now)
        return await _retry_or_give_up(session, delivery, event, settings, str(exc), now)
    SEND_SECONDS.labels(KIND, "sent").observe(time.perf_counter() - started)
    await repository.record(session, delivery, DeliveryStatus.SENT, sent_at=now)
    return DeliveryResult("sent", delivery.attempts, delivery.status)


async def _retry_or_give_up(
    session: AsyncSession, delivery: Delivery, event: InvitationCreated, settings: Settings, error: str, now: datetime
) -> DeliveryResult:
    """A transient failure: retry with backoff, or dead-letter once the attempts are used up."""
    if delivery.attempts >= settings.smtp.max_attempts:
        return await _give_up(session, delivery, event, settings, error, "transient", now)
    await repository.record(session, delivery, DeliveryStatus.RETRYING, error=error)
    delay = retry_delay(delivery.attempts, settings.smtp)
    return DeliveryResult("retry", delivery.attempts, delivery.status, delay, error, "transient")


async def _give_up(
    session: AsyncSession,
    delivery: Delivery,
    event: InvitationCreated,
    settings: Settings,
    error: str,
    reason: FailureReason,
    now: datetime,
) -> DeliveryResult:
    await repository.record(session, delivery, DeliveryStatus.DEAD, error=error)
    letter = DeadLetter(
        event_id=event.event_id,
        invitation_id=event.invitation_id,
        org_id=event.org_id,
        recipient=event.email,
        attempts=delivery.attempts,
        error=error,
        failed_at=now,
    )
    await outbox.enqueue(
        session,
        settings.notifications.dead_letter_subject,
        letter.payload(),
        msg_id=event.event_id,
    )
    return DeliveryResult("dead", delivery.attempts, delivery.status, error=error, failure=reason)
