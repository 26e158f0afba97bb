"""NATS connection and JetStream helpers."""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable
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


# Callbacks run after a connection made by `connect` is re-established (see on_reconnected).
_reconnect_listeners: weakref.WeakKeyDictionary[NATS, list[Callable[[], Awaitable[None]]]] = weakref.WeakKeyDictionary()


def on_reconnected(nc: NATS, callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` each time `nc` (made by `connect`) reconnects. Core subscriptions are
    replayed by the client itself; JetStream push consumers may be gone with a restarted server
    and must be recreated by their owner (the client would only notice after its inactivity check)."""
    _reconnect_listeners.setdefault(nc, []).append(callback)


async def connect(settings: NatsSettings, name: str, *, attempts: int = 60) -> NATS:
    """Connect, retrying while the server comes up; afterwards reconnect forever."""
    connection: list[NATS] = []  # set once connected: the reconnect callback's listeners

    async def on_disconnect() -> None:
        log.warning("disconnected from NATS")

    async def on_reconnect() -> None:
        log.info("reconnected to NATS")
        for callback in _reconnect_listeners.get(connection[0], []) if connection else []:
            try:
                await callback()
            except Exception:
                log.exception("a NATS reconnect callback failed")

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
            nc = await nats.connect(
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
            connection.append(nc)
            return nc
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
