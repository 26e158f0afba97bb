"""The notifications service's HTTP app and process wiring.

The HTTP app serves only `/healthz`, `/readyz` (Postgres, NATS, the invitation consumer) and
`/metrics`; the work is the JetStream consumer started in the lifespan. Nothing in the API
request path waits on SMTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from icp_common.grpc import InternalClient
from icp_common.identity import IdentitySigner
from icp_common.nats import StreamSpec
from icp_common.resources import ServiceResources
from icp_common.web import create_service_app

from .alerts.handlers import AlertHandler
from .alerts.routes import router as alerts_router
from .alerts.service import AlertDeliverer
from .alerts.targets import WebhookSender
from .consumers import ConsumerSpec, PullConsumer
from .db import MIGRATIONS_DIR, SERVICE, load_models, outbox_table
from .invitations.handlers import InvitationHandler
from .invitations.links import GrpcInvitationLinks
from .settings import Settings
from .smtp import Mailer

log = logging.getLogger(__name__)


def streams(settings: Settings) -> list[StreamSpec]:
    """The streams this service owns: the dead letters."""
    c = settings.notifications
    return [
        StreamSpec(
            c.dead_letter_stream,
            [f"{c.dead_letter_prefix}.>"],
            max_age_seconds=c.dead_letter_max_age_days * 24 * 3600,
        )
    ]


def invitation_consumer_spec(settings: Settings) -> ConsumerSpec:
    c = settings.notifications
    return ConsumerSpec(
        stream=c.stream,
        subject=c.subject,
        durable=c.durable,
        ack_wait_seconds=settings.ack_wait_seconds(),
        max_ack_pending=c.max_ack_pending,
    )


def alert_consumer_spec(settings: Settings) -> ConsumerSpec:
    a = settings.alerts
    return ConsumerSpec(
        stream=a.stream,
        subject=a.subject,
        durable=a.durable,
        ack_wait_seconds=settings.ack_wait_seconds(),
        max_ack_pending=settings.notifications.max_ack_pending,
    )


def describe_smtp(settings: Settings) -> str:
    s = settings.smtp
    if not s.enabled:
        return "SMTP not configured (INTERLOPER_SMTP_HOST is empty): invitation e-mails will not be sent"
    login = f", login as {s.user}" if s.user else ", no login"
    verify = "" if s.verify or s.effective_security == "none" else ", certificate NOT verified"
    return f"sending e-mail via {s.host}:{s.port} ({s.effective_security}{login}{verify}) from {s.from_addr}"


def create_app(settings: Settings, *, mailer: Mailer | None = None) -> FastAPI:
    load_models()
    secret = settings.require_secret()
    signer = IdentitySigner(secret, settings.identity_ttl_seconds, audience=SERVICE)
    resources = ServiceResources(
        SERVICE,
        settings,
        migrations_dir=MIGRATIONS_DIR,
        outbox_table=outbox_table,
        streams=streams(settings),
        # Their lag and redeliveries in /metrics.
        consumers=[(c.stream, c.durable) for c in (invitation_consumer_spec(settings), alert_consumer_spec(settings))],
    )
    sender = mailer or Mailer(settings.smtp)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        consumer: PullConsumer | None = None
        alerts: PullConsumer | None = None
        webhooks = WebhookSender(
            timeout=settings.alerts.webhook_timeout_seconds, allow_private=settings.alerts.allow_private_targets
        )
        try:
            assert resources.nc is not None and resources.sessions is not None
            log.info(describe_smtp(settings))
            links = GrpcInvitationLinks(
                InternalClient(settings.addresses.identity_grpc_target, secret, signer, audience="identity")
            )
            state["links"] = links
            handler = InvitationHandler(resources.sessions, sender, links, settings)
            consumer = PullConsumer(
                resources.nc,
                invitation_consumer_spec(settings),
                handler,
                concurrency=settings.notifications.concurrency,
            )
            await consumer.start()
            state["invitations"] = app.state.consumer = consumer
            deliverer = AlertDeliverer(resources.sessions, sender, webhooks, settings)
            alerts = PullConsumer(resources.nc, alert_consumer_spec(settings), AlertHandler(deliverer), concurrency=2)
            await alerts.start()
            state["alerts"] = app.state.alert_consumer = alerts
            yield
        finally:
            if alerts is not None:
                await alerts.stop(grace=settings.smtp.timeout_seconds + 5)
            if consumer is not None:
                await consumer.stop(grace=settings.smtp.timeout_seconds + 5)
            await webhooks.close()
            if "links" in state:
                await state["links"].close()
            await resources.stop()

    async def consumer_ready() -> bool:
        consumer = state.get("invitations")
        return consumer is not None and consumer.bound

    checks = {**resources.checks(), "consumer": consumer_ready}
    app = create_service_app(SERVICE, signer=signer, lifespan=lifespan, checks=checks)
    app.include_router(alerts_router)
    app.state.settings = settings
    app.state.resources = resources
    app.state.mailer = sender
    return app
