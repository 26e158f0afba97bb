"""NATS handler of `pipelines.alerts.>`: decode, deliver to every matching target, outcome -> ack.

All targets handled (sent, dead-lettered, skipped, or already done) -> ack; any target to retry ->
nak with the shortest of their delays (the targets already sent are skipped next time);
undecodable payload (poison) -> term."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from icp_common.contracts import ContractError, PipelineAlert

from ..consumers import Ack, Nak, Outcome, Term
from ..metrics import ALERTS_DELIVERED, EMAIL_DELIVERIES, INVALID_EVENTS
from .service import AlertDeliverer

log = logging.getLogger(__name__)


class AlertHandler:
    def __init__(self, deliverer: AlertDeliverer) -> None:
        self.deliverer = deliverer

    async def __call__(self, msg: Msg) -> Outcome:
        try:
            event = PipelineAlert.decode(msg.data)
        except ContractError as exc:
            INVALID_EVENTS.labels(msg.subject).inc()
            log.error("invalid alert event on %s, dropped: %s", msg.subject, exc)
            return Term("invalid payload")
        results = await self.deliverer.deliver(event)
        ids = {"event_id": str(event.event_id), "run_id": str(event.run_id)}
        delays: list[float] = []
        for r in results:
            kind = "email" if r.target.webhook_format is None else "webhook"
            ALERTS_DELIVERED.labels(kind, r.outcome).inc()
            if kind == "email":
                EMAIL_DELIVERIES.labels("alert", r.outcome).inc()
            if r.outcome == "retry":
                delays.append(r.delay)
                log.warning(
                    "alert %s to %s failed (attempt %d): %s; retrying in %.1f s",
                    event.kind,
                    r.target.redacted,
                    r.attempts,
                    r.error,
                    r.delay,
                    extra=ids,
                )
            elif r.outcome == "dead":
                log.error(
                    "giving up on alert %s to %s after %d attempt(s): %s; dead-lettered",
                    event.kind,
                    r.target.redacted,
                    r.attempts,
                    r.error,
                    extra=ids,
                )
            elif r.outcome == "sent":
                log.info("alert %s sent to %s", event.kind, r.target.redacted, extra=ids)
        return Nak(min(delays)) if delays else Ack()
