"""NATS handler of `identity.invitation.created`: decode, one unit of work, outcome -> ack.

sent / duplicate / SMTP not configured / expired -> ack; transient failure -> nak with the
backoff delay; dead-lettered -> term; undecodable payload (poison) -> term."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.contracts import ContractError
from icp_common.db import unit_of_work

from ..consumers import Ack, Nak, Outcome, Term
from ..metrics import DEAD_LETTERS, EMAIL_DELIVERIES, EMAILS_SENT, EVENTS_SKIPPED, INVALID_EVENTS, SEND_FAILURES
from ..settings import Settings
from ..smtp import Mailer
from . import service
from .links import InvitationLinks
from .schemas import KIND, InvitationCreated

log = logging.getLogger(__name__)


class InvitationHandler:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], mailer: Mailer, links: InvitationLinks, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.links = links
        self.settings = settings
        self._warned_disabled = False

    async def __call__(self, msg: Msg) -> Outcome:
        try:
            event = InvitationCreated.decode(msg.data)
        except ContractError as exc:
            INVALID_EVENTS.labels(msg.subject).inc()
            log.error(
                "invalid invitation event on %s (stream sequence %s, message id %s), dropped: %s",
                msg.subject,
                _stream_seq(msg),
                (msg.headers or {}).get("Nats-Msg-Id"),
                exc,
            )
            return Term("invalid payload")

        async with unit_of_work(self.sessions) as session:
            result = await service.deliver_invitation(
                session, event, mailer=self.mailer, links=self.links, settings=self.settings
            )

        ids = {"event_id": str(event.event_id), "invitation_id": str(event.invitation_id)}
        match result.outcome:
            case "sent":
                EMAILS_SENT.labels(KIND).inc()
                EMAIL_DELIVERIES.labels(KIND, "sent").inc()
                log.info("invitation e-mail sent to %s (attempt %d)", event.email, result.attempts, extra=ids)
                return Ack()
            case "duplicate":
                EVENTS_SKIPPED.labels(KIND, "duplicate").inc()
                log.info("invitation event already handled (%s); acknowledged", result.status, extra=ids)
                return Ack()
            case "skipped":
                EVENTS_SKIPPED.labels(KIND, "smtp_disabled").inc()
                if not self._warned_disabled:
                    self._warned_disabled = True
                    log.warning(
                        "SMTP is not configured (INTERLOPER_SMTP_HOST is empty): invitation e-mails are not sent "
                        "and their events are acknowledged",
                    )
                return Ack()
            case "expired":
                EVENTS_SKIPPED.labels(KIND, "expired").inc()
                log.warning("invitation expired before its e-mail could be sent; not sending", extra=ids)
                return Ack()
            case "retry":
                SEND_FAILURES.labels(KIND, result.failure or "transient").inc()
                EMAIL_DELIVERIES.labels(KIND, "retry").inc()
                log.warning(
                    "sending the invitation e-mail to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                    event.email,
                    result.attempts,
                    self.settings.smtp.max_attempts,
                    result.error,
                    result.delay,
                    extra=ids,
                )
                return Nak(result.delay)
            case "dead":
                SEND_FAILURES.labels(KIND, result.failure or "permanent").inc()
                DEAD_LETTERS.labels(KIND).inc()
                EMAIL_DELIVERIES.labels(KIND, "dead").inc()
                log.error(
                    "giving up on the invitation e-mail to %s after %d attempt(s) (%s): %s; dead-lettered to %s",
                    event.email,
                    result.attempts,
                    result.failure,
                    result.error,
                    self.settings.notifications.dead_letter_subject,
                    extra=ids,
                )
                return Term(result.error or "dead-lettered")
        raise AssertionError(f"unknown outcome {result.outcome!r}")


def _stream_seq(msg: Msg) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:
        return None
