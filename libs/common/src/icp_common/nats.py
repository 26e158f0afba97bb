"""NATS connection and JetStream helpers."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from .settings import NatsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_seconds: float = 24 * 3600
    duplicate_window_seconds: float = 120


async def connect(settings: NatsSettings, name: str, *, attempts: int = 60) -> NATS:
    """Connect, retrying while the server comes up; afterwards reconnect forever."""

    async def on_disconnect() -> None:
        log.warning("disconnected from NATS")

    async def on_reconnect() -> None:
        log.info("reconnected to NATS")

    async def on_error(exc: Exception) -> None:
        log.debug("NATS error: %s", exc)

    servers = [s.strip() for s in settings.url.split(",") if s.strip()]
    auth: dict[str, Any] = {}
    if settings.user:
        auth = {"user": settings.user, "password": settings.password.get_secret_value()}
    if settings.tls_ca_file:
        auth["tls"] = ssl.create_default_context(cafile=settings.tls_ca_file)
    for attempt in range(attempts):
        try:
            return await nats.connect(
                servers=servers,
                name=name,
                inbox_prefix=settings.inbox_prefix(),
                **auth,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
            )
        except Exception as exc:
            if attempt == attempts - 1:
                raise SystemExit(
                    f"cannot reach NATS at {settings.display_url()}: {exc}. "
                    "Check INTERLOPER_NATS_URL, INTERLOPER_NATS_USER and INTERLOPER_NATS_PASSWORD."
                ) from exc
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def ensure_stream(nc: NATS, spec: StreamSpec) -> None:
    """Create the stream, or update it to the given subjects/limits."""
    js = nc.jetstream()
    config = StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=spec.max_age_seconds,
        duplicate_window=spec.duplicate_window_seconds,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def close(nc: NATS) -> None:
    """Drain when connected (deliver what is in flight), else just close: never raises."""
    if nc.is_closed:
        return
    try:
        if nc.is_connected:
            await nc.drain()
            return
    except Exception as exc:  # reconnecting, or the server went away meanwhile
        log.debug("NATS drain failed (%s); closing", exc)
    try:
        await nc.close()
    except Exception as exc:
        log.debug("NATS close failed: %s", exc)
