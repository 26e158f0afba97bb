"""A durable JetStream pull consumer run as a task with start/stop.

The handler returns what to do with the message, and only this module talks to JetStream
about it: `Ack()` (done), `Nak(delay)` (redeliver after `delay` seconds) or `Term(reason)`
(never redeliver). An unexpected exception in the handler is logged and the message is
redelivered with exponential backoff. While a handler runs, the message's ack deadline is
extended (`in_progress`), so a slow SMTP server does not cause a concurrent redelivery.

Concurrency is bounded: the loop fetches at most as many messages as it has free slots.
Stopping finishes the messages in flight (up to a grace period) and unsubscribes; the
connection itself is drained by the owner of the NATS client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from icp_common import telemetry
from icp_common.context import request_id_var

from .metrics import HANDLER_ERRORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Nak:
    delay: float


@dataclass(frozen=True)
class Term:
    reason: str = ""


Outcome = Ack | Nak | Term
Handler = Callable[[Msg], Awaitable[Outcome]]


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    subject: str
    durable: str
    ack_wait_seconds: float = 60.0
    max_ack_pending: int = 1000

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            max_ack_pending=self.max_ack_pending,
            # Redeliveries are bounded by the handler (attempts recorded in the database), not
            # by JetStream, which would silently stop delivering after max_deliver.
            max_deliver=-1,
        )


def error_backoff(num_delivered: int, *, initial: float = 1.0, maximum: float = 60.0) -> float:
    return float(min(initial * 2.0 ** max(num_delivered - 1, 0), maximum))


class PullConsumer:
    def __init__(
        self,
        nc: NATS,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        concurrency: int = 4,
        fetch_timeout: float = 2.0,
        error_delay: Callable[[int], float] = error_backoff,
    ) -> None:
        self.nc = nc
        self.spec = spec
        self.handler = handler
        self.concurrency = concurrency
        self.fetch_timeout = fetch_timeout
        self.error_delay = error_delay
        self.bound = False
        self._js: JetStreamContext = nc.jetstream()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.spec.durable}")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop fetching, let the messages in flight finish (up to `grace` s), unsubscribe."""
        self._stopping.set()
        self._slot_free.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                # Not acknowledged: JetStream redelivers it (to us or another replica).
                task.cancel()
            if pending:
                log.warning("stopped with %d message(s) unfinished; they will be redelivered", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)  # the last acks are on the wire
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        self.bound = False

    # ------------------------------------------------------------------ binding

    async def _bind(self) -> JetStreamContext.PullSubscription | None:
        """Create (or update) the durable consumer and subscribe; wait for the stream to exist.
        None when stopped before that."""
        delay, warned = 0.5, False
        while not self._stopping.is_set():
            try:
                await self._js.add_consumer(self.spec.stream, config=self.spec.config())
                sub = await self._js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
                log.info(
                    "consuming %s from stream %s (durable %s)", self.spec.subject, self.spec.stream, self.spec.durable
                )
                return sub
            except asyncio.CancelledError:
                raise
            except NotFoundError:
                if not warned:
                    log.warning("stream %s does not exist yet; waiting for it", self.spec.stream)
                    warned = True
            except Exception as exc:
                if not warned:
                    log.warning("cannot create consumer %s: %s; retrying", self.spec.durable, exc)
                    warned = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, 5.0)
        return None

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        sub = self._sub = await self._bind()
        if sub is None:
            return
        self.bound = True
        failing = False
        while not self._stopping.is_set():
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                messages = await self._fetch(sub, free)
            except TimeoutError:
                failing = False
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("fetching from %s failed: %s; retrying", self.spec.durable, exc)
                    failing = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                if not self._stopping.is_set() and self.nc.is_connected:
                    # The consumer may have been deleted (or the server lost its state): ensure it.
                    with contextlib.suppress(Exception):
                        await self._js.add_consumer(self.spec.stream, config=self.spec.config())
                continue
            if failing:
                log.info("fetching from %s works again", self.spec.durable)
                failing = False
            for msg in messages:
                task = asyncio.create_task(self._process(msg))
                self._inflight.add(task)
                task.add_done_callback(self._done)

    async def _fetch(self, sub: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
        """One fetch, abandoned as soon as `stop()` is called (a message the server hands out in
        that instant is not lost: unacknowledged, it is redelivered after the ack wait)."""
        fetch = asyncio.ensure_future(sub.fetch(batch, timeout=self.fetch_timeout))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch
            return []
        return fetch.result()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_free.set()

    async def _process(self, msg: Msg) -> None:
        headers = msg.headers or {}
        token = request_id_var.set(headers.get("X-Request-Id") or None)
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            try:
                if telemetry.enabled():  # a span in the trace of the event's origin
                    with telemetry.consumer_span(f"{self.spec.durable} process", headers):
                        outcome = await self.handler(msg)
                else:
                    outcome = await self.handler(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                HANDLER_ERRORS.labels(msg.subject).inc()
                delivered = _num_delivered(msg)
                delay = self.error_delay(delivered)
                log.exception(
                    "handling a message of %s failed (delivery %d); redelivering in %.1f s",
                    msg.subject,
                    delivered,
                    delay,
                )
                outcome = Nak(delay)
            finally:
                keepalive.cancel()
            await self._settle(msg, outcome)
        finally:
            request_id_var.reset(token)

    async def _keep_alive(self, msg: Msg) -> None:
        interval = max(self.spec.ack_wait_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _settle(self, msg: Msg, outcome: Outcome) -> None:
        try:
            if isinstance(outcome, Ack):
                await msg.ack()
            elif isinstance(outcome, Nak):
                await msg.nak(delay=max(outcome.delay, 0.0))
            else:
                await msg.term()
        except Exception as exc:  # e.g. NATS down: the message comes back after ack_wait
            log.warning("could not settle a message of %s (%s): %s", msg.subject, type(outcome).__name__, exc)


def _num_delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1
