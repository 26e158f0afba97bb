"""NATS connection and JetStream helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.client import Client as NATS
from nats.errors import AuthorizationError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from .settings import NatsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DurableSpec:
    """A durable pull consumer that belongs to a stream's contract (see StreamSpec.durables)."""

    name: str
    filter_subject: str
    ack_wait_seconds: float = 60

    def config(self) -> ConsumerConfig:
        """Its configuration, the same wherever it is created (a create with another one fails)."""
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            max_deliver=-1,
        )


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_seconds: float = 24 * 3600
    duplicate_window_seconds: float = 120
    # Size limits besides age (-1: none). nats-server's file store keeps the block being written
    # in memory (a pooled buffer growing 256 KB, 1 MB, 4 MB, up to the block size) and sizes blocks
    # from max_bytes: 4 MB up to 32 MiB, else 8 MB; without max_bytes 8 MB under limits retention,
    # 4 MB under interest retention.
    max_bytes: int = -1
    max_msgs_per_subject: int = -1
    # "interest": a message is kept until every consumer interested in it has acknowledged it (and
    # dropped at once when none is): only for a stream whose consumers are all in `durables`.
    retention: Literal["limits", "interest"] = "limits"
    # Durables created with the stream, by whichever service ensures it first, so that none of its
    # messages is published before they exist.
    durables: tuple[DurableSpec, ...] = ()


# Callbacks run after a connection made by `connect` is re-established (see on_reconnected).
_reconnect_listeners: weakref.WeakKeyDictionary[NATS, list[Callable[[], Awaitable[None]]]] = weakref.WeakKeyDictionary()
# The stream replicas of each connection made by `connect` (its settings' stream_replicas), so that
# every stream a process ensures follows its configuration, whichever module ensures it.
_stream_replicas: weakref.WeakKeyDictionary[NATS, int] = weakref.WeakKeyDictionary()


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

    refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        if is_authorization_error(exc):
            # nats-py retries a refused login forever (max_reconnect_attempts=-1), during the first
            # connect too, and reports it only here: say so loudly rather than hang in silence.
            log.error(
                "NATS refused the credentials of user %r at %s (%s): check INTERLOPER_NATS_USER and "
                "INTERLOPER_NATS_PASSWORD (or the URL's credentials)",
                settings.username() or "(none)",
                settings.display_url(),
                exc,
            )
            if not refused.done():
                refused.set_result(exc)
            return
        log.debug("NATS error: %s", exc)

    servers = [s.strip() for s in settings.url.split(",") if s.strip()]
    auth: dict[str, Any] = {}
    if settings.user:
        auth = {"user": settings.user, "password": settings.password.get_secret_value()}
    if settings.tls_ca_file:
        auth["tls"] = ssl.create_default_context(cafile=settings.tls_ca_file)
    for attempt in range(attempts):
        try:
            nc = await _first_connect(
                refused,
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
            _stream_replicas[nc] = settings.stream_replicas
            return nc
        except _Refused as exc:
            # Wrong credentials do not fix themselves: fail now, not after every attempt.
            raise SystemExit(
                f"NATS at {settings.display_url()} refused user {settings.username() or '(none)'!r}: {exc}. "
                "Check INTERLOPER_NATS_USER and INTERLOPER_NATS_PASSWORD (or the credentials in INTERLOPER_NATS_URL)."
            ) from exc
        except Exception as exc:
            if attempt == attempts - 1:
                raise SystemExit(
                    f"cannot reach NATS at {settings.display_url()}: {exc}. "
                    "Check INTERLOPER_NATS_URL, INTERLOPER_NATS_USER and INTERLOPER_NATS_PASSWORD."
                ) from exc
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def is_authorization_error(exc: BaseException) -> bool:
    """The server refused the login (during the handshake nats-py reports it as a plain error)."""
    return isinstance(exc, AuthorizationError) or "authorization violation" in str(exc).lower()


class _Refused(Exception):
    """The server refused this client's credentials."""


async def _first_connect(refused: asyncio.Future[Exception], **options: Any) -> NATS:
    """`nats.connect`, unless the server refuses the credentials first (then `_Refused`)."""
    nc = NATS()
    attempt = asyncio.ensure_future(nc.connect(**options))
    waiting: set[asyncio.Future[Any]] = {attempt, refused}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if attempt.done():
        attempt.result()  # raises what the connect raised
        return nc
    attempt.cancel()
    await asyncio.gather(attempt, return_exceptions=True)
    with contextlib.suppress(Exception):
        await nc.close()  # the socket of the attempt in progress
    raise _Refused(str(refused.result()))


async def ensure_stream(nc: NATS, spec: StreamSpec, *, replicas: int | None = None) -> None:
    """Create the stream, or update it to the given subjects/limits. Replicas: `replicas`, else
    INTERLOPER_NATS_STREAM_REPLICAS of the settings `nc` was made from (1: one server; a
    clustered server also scales an existing stream up or down on update)."""
    js = nc.jetstream()
    config = StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        retention=RetentionPolicy.INTEREST if spec.retention == "interest" else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas if replicas is not None else _stream_replicas.get(nc, 1),
        max_age=spec.max_age_seconds,
        max_bytes=spec.max_bytes,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        duplicate_window=spec.duplicate_window_seconds,
    )
    if not spec.durables:
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
        return
    # The durables exist before the stream keeps messages by interest: a new stream starts with
    # limits retention, and an existing one (of an earlier version: limits) gets its durables
    # first, else switching it would drop every message nobody had read yet.
    with contextlib.suppress(BadRequestError):  # it exists
        await js.add_stream(dataclasses.replace(config, retention=RetentionPolicy.LIMITS))
    for durable in spec.durables:
        await js.add_consumer(spec.name, config=durable.config())  # the same configuration: a no-op
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
