"""Delivering one alert event: match the organisation's rules, then one transaction per target.

Each target's `alert_deliveries` row (unique on event id + target) is created and locked first; a
final row (sent, dead, skipped) means that target was handled already (a redelivery, a restart,
another replica: the second waits on the lock and then sees `sent`). The message is sent while
the row is locked and the outcome is recorded in the same transaction, a dead letter too. So a
target gets one message per event even when the process dies between targets (the redelivered
event skips the ones already sent); a copy is possible only if the commit fails right after the
send (at least once; the e-mail Message-ID and the webhook's X-Interloper-Event-Id are stable)."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.contracts import AlertDeadLetter, PipelineAlert
from icp_common.db import unit_of_work

from ..db import outbox
from ..invitations.rendering import InvalidMessage
from ..settings import AlertSettings, Settings
from ..smtp import Mailer, SendError
from . import messages, rules
from .models import AlertDelivery
from .schemas import Rule
from .targets import TargetRefused, WebhookFailed, WebhookRequest, WebhookSender

log = logging.getLogger(__name__)

FINAL = frozenset({"sent", "dead", "skipped"})
MAX_ERROR_LENGTH = 2000
Outcome = Literal["sent", "duplicate", "skipped", "retry", "dead"]


@dataclass(frozen=True)
class Target:
    key: str  # "email:<address>" | "webhook:<url>" (the idempotency key with the event id)
    address: str
    webhook_format: Literal["json", "slack"] | None = None
    secret: str | None = None

    @property
    def redacted(self) -> str:
        if self.webhook_format is None:
            return self.key
        parts = urlsplit(self.address)
        return f"webhook:{parts.scheme}://{parts.hostname}/..."


@dataclass(frozen=True)
class Result:
    target: Target
    outcome: Outcome
    attempts: int
    delay: float = 0.0
    error: str | None = None


def matches(rule: Rule, event: PipelineAlert) -> bool:
    if rule.on != event.kind:
        return False
    if event.kind == "run_stuck" and rule.stuck_minutes != event.stuck_minutes:
        return False
    return rule.jobs is None or (event.job_id is not None and event.job_id in rule.jobs)


def targets_of(rule_list: list[Rule], event: PipelineAlert) -> list[Target]:
    """Every distinct target of the matching rules (two rules naming one address: one message)."""
    found: dict[str, Target] = {}
    for rule in rule_list:
        if not matches(rule, event):
            continue
        for address in rule.email:
            key = f"email:{address.strip().lower()}"
            found.setdefault(key, Target(key, address.strip()))
        for hook in rule.webhooks:
            key = f"webhook:{hook.url}"
            found.setdefault(key, Target(key, hook.url, hook.format, hook.secret))
    return list(found.values())


def retry_delay(attempts: int, settings: AlertSettings, *, jitter: float = 0.2) -> float:
    base = settings.retry_initial_seconds * 2.0 ** max(attempts - 1, 0)
    return float(min(base, settings.retry_max_seconds) * random.uniform(1 - jitter, 1 + jitter))


class AlertDeliverer:
    """Delivers alert events with the service's mailer and webhook sender."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], mailer: Mailer, webhooks: WebhookSender, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.webhooks = webhooks
        self.settings = settings

    async def deliver(self, event: PipelineAlert) -> list[Result]:
        async with unit_of_work(self.sessions) as session:
            rule_list = await rules.load(session, event.org_id)
        return [await self._one(event, target) for target in targets_of(rule_list, event)]

    async def _one(self, event: PipelineAlert, target: Target) -> Result:
        async with unit_of_work(self.sessions) as session:
            row = await _lock(session, event, target)
            if row.status in FINAL:
                return Result(target, "duplicate", row.attempts)
            if target.webhook_format is None and not self.mailer.configured:
                await _record(session, row, "skipped", "SMTP not configured")
                return Result(target, "skipped", row.attempts)
            row.attempts += 1
            now = datetime.now(UTC)
            try:
                await self._send(event, target, now)
            except (TargetRefused, InvalidMessage) as exc:
                return await self._give_up(session, row, event, target, str(exc), now)
            except (SendError, WebhookFailed) as exc:
                if exc.permanent or row.attempts >= self.settings.alerts.max_attempts:
                    return await self._give_up(session, row, event, target, str(exc), now)
                await _record(session, row, "retrying", str(exc))
                return Result(target, "retry", row.attempts, retry_delay(row.attempts, self.settings.alerts), str(exc))
            await _record(session, row, "sent", None, sent_at=now)
            return Result(target, "sent", row.attempts)

    async def _send(self, event: PipelineAlert, target: Target, now: datetime) -> None:
        public_url = self.settings.public_url
        if target.webhook_format is None:
            message = messages.email(
                event, target.address, public_url=public_url, from_addr=self.settings.smtp.from_addr, now=now
            )
            await self.mailer.send(message)
            return
        body = (
            messages.slack_body(event, public_url)
            if target.webhook_format == "slack"
            else messages.json_body(event, public_url)
        )
        await self.webhooks.send(WebhookRequest(target.address, body, str(event.event_id), target.secret))

    async def _give_up(
        self, session: AsyncSession, row: AlertDelivery, event: PipelineAlert, target: Target, error: str, now: datetime
    ) -> Result:
        await _record(session, row, "dead", error)
        letter = AlertDeadLetter(
            event_id=event.event_id,
            alert=event.kind,
            org_id=event.org_id,
            target=target.redacted,
            attempts=row.attempts,
            error=error[:MAX_ERROR_LENGTH],
            failed_at=now,
        )
        # Message id: one dead letter per event and target, even if this transaction is retried.
        await outbox.enqueue(
            session,
            self.settings.notifications.alert_dead_letter_subject,
            letter.payload(),
            msg_id=uuid.uuid5(event.event_id, target.key),
        )
        return Result(target, "dead", row.attempts, error=error)


async def _lock(session: AsyncSession, event: PipelineAlert, target: Target) -> AlertDelivery:
    await session.execute(
        insert(AlertDelivery)
        .values(event_id=event.event_id, target=target.key, kind=event.kind, org_id=event.org_id)
        .on_conflict_do_nothing(index_elements=[AlertDelivery.event_id, AlertDelivery.target])
    )
    row = await session.scalar(
        select(AlertDelivery)
        .where(AlertDelivery.event_id == event.event_id, AlertDelivery.target == target.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def _record(
    session: AsyncSession, row: AlertDelivery, status: str, error: str | None, *, sent_at: datetime | None = None
) -> None:
    row.status = status
    row.updated_at = func.now()  # type: ignore[assignment]
    if error is not None:
        row.last_error = error[:MAX_ERROR_LENGTH]
    if sent_at is not None:
        row.sent_at = sent_at
    await session.flush()
