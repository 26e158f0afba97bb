"""Realtime fan-out: every gateway process follows the REALTIME stream with one ordered
JetStream consumer and hands each message to the sockets (WebSocket or SSE) of the message's
organisation. Identity events close the sockets of removed members, ended sessions and
sessions that switched organisation.

A slow client never delays the others: each has a bounded queue, and a client whose queue is
full is closed (1013, "try again later") so that it reconnects and resumes. A message is encoded
once (`Frame`), whatever the number of clients it goes to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from icp_common import contracts, telemetry
from icp_common import nats as nats_helpers
from icp_common.streams import REALTIME

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=contracts.Contract)

SOCKETS = Gauge("icp_realtime_clients", "Open realtime clients (WebSocket + SSE)")
DELIVERED = Counter("icp_realtime_messages_total", "Realtime messages queued to clients")
DROPPED = Counter("icp_realtime_slow_clients_total", "Clients closed because they could not keep up")

QUEUE_LIMIT = 1000
BACKLOG_SECONDS = 5.0  # how long a resume may take to read what was missed

# Tables a client only receives when it asks for them (`?subscribe=run_logs`): the web UI's frame
# contract names `runs`, `backfills` and `events`, and run logs can be many frames.
OPT_IN_TABLES = frozenset({"run_logs"})


def opt_ins(value: str | None) -> frozenset[str]:
    """The opt-in tables named in a `subscribe` parameter (comma-separated; others ignored)."""
    return frozenset(name.strip() for name in (value or "").split(",")) & OPT_IN_TABLES


def table_of(subject: str) -> str:
    """`realtime.<org_id>.<table>` -> the table."""
    parts = subject.split(".")
    return parts[2] if len(parts) > 2 else ""


# Close codes (and reasons) of a client that may no longer follow its organisation.
SESSION_ENDED = (4401, "session ended")
MEMBERSHIP_REMOVED = (4403, "membership removed")
ORG_SWITCHED = (4409, "organisation switched; reconnect")


def token_stream_key(token_id: str) -> str:
    """A client's `session_id` when an API token opened it (a token has no session)."""
    return f"token:{token_id}"


class Frame:
    """One REALTIME message as its clients send it: each encoding is made once per message and
    shared by every client that receives it (1,000 sockets: one decode, not 1,000)."""

    __slots__ = ("_sse", "_text", "_text_with_id", "data", "seq")

    def __init__(self, seq: int, data: bytes) -> None:
        self.seq, self.data = seq, data
        self._text: str | None = None
        self._text_with_id: str | None = None
        self._sse: bytes | None = None

    def text(self, with_id: bool) -> str:
        """The WebSocket text frame: the payload, or with its stream sequence as `id` (resume)."""
        if with_id:
            if self._text_with_id is None:
                self._text_with_id = with_seq(self.seq, self.data).decode()
            return self._text_with_id
        if self._text is None:
            self._text = self.data.decode()
        return self._text

    def sse(self) -> bytes:
        """The Server-Sent Events record (`id:` = the stream sequence)."""
        if self._sse is None:
            self._sse = b"id: " + str(self.seq).encode() + b"\ndata: " + self.data + b"\n\n"
        return self._sse


def with_seq(seq: int, payload: bytes) -> bytes:
    """`payload` (a JSON object) with the stream sequence as its first key, `id`."""
    return b'{"id":' + str(seq).encode() + b"," + payload.lstrip()[1:]


@dataclass(eq=False)
class Client:
    """One connected WebSocket or SSE stream."""

    org_id: str
    user_id: str
    session_id: str
    with_ids: bool
    queue: asyncio.Queue[Frame | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    close_code: int | None = None
    close_reason: str = ""
    last_seq: int = 0  # messages at or below this sequence were already sent (resume)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    opt_ins: frozenset[str] = frozenset()  # the OPT_IN_TABLES it subscribed to

    def wants(self, table: str) -> bool:
        return table not in OPT_IN_TABLES or table in self.opt_ins

    def close(self, code: int, reason: str) -> None:
        """Stop this client: its sender ends (at once, even if blocked on a stalled peer)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)  # wakes a sender waiting for messages

    def frame(self, seq: int, payload: bytes) -> bytes:
        return with_seq(seq, payload) if self.with_ids else payload


class RealtimeHub:
    def __init__(self) -> None:
        self.clients: dict[str, set[Client]] = defaultdict(set)
        self._nc: NATS | None = None
        self._subs: list[Subscription] = []
        self._relay: Subscription | None = None  # the ordered consumer of REALTIME
        self._seq = 0  # last stream sequence handed to the clients (the relay resumes after it)
        self._resubscribing: asyncio.Task[None] | None = None
        self.resubscribed = 0  # consumers recreated after a reconnect (tests, logs)

    async def start(self, nc: NATS) -> None:
        self._nc = nc
        await nats_helpers.ensure_stream(nc, REALTIME)
        info = await nc.jetstream().stream_info(REALTIME.name)
        self._seq = info.state.last_seq  # as DeliverPolicy.NEW, with a known starting point
        await self._follow()
        # A restarted server forgets the ephemeral consumer; the client library only notices
        # after its inactivity check (2 idle heartbeats, then a 10 s wait: ~17 s without frames).
        nats_helpers.on_reconnected(nc, self._on_reconnected)
        for subject, handler in (
            (contracts.MEMBERSHIP_REMOVED, self._on_membership_removed),
            (contracts.SESSION_REVOKED, self._on_session_revoked),
            (contracts.SESSION_SWITCHED, self._on_session_switched),
            (contracts.TOKEN_REVOKED, self._on_token_revoked),
        ):
            self._subs.append(await nc.subscribe(subject, cb=handler))
        log.info("realtime relay following %s", REALTIME.subjects)

    async def _follow(self) -> None:
        """(Re)create the ordered consumer, starting right after the last relayed message."""
        assert self._nc is not None
        old, self._relay = self._relay, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._relay = await self._nc.jetstream().subscribe(
            "realtime.>",
            stream=REALTIME.name,
            cb=self._on_realtime,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._seq + 1),
            idle_heartbeat=5.0,
        )

    async def _on_reconnected(self) -> None:
        # Not awaited by the client's reconnect loop: JetStream may need a moment after a restart.
        if self._resubscribing is not None:
            self._resubscribing.cancel()
        self._resubscribing = asyncio.get_running_loop().create_task(self._refollow())

    async def _refollow(self, attempts: int = 120) -> None:
        for _ in range(attempts):
            if self._nc is None or self._nc.is_closed:
                return
            try:
                await self._follow()
            except Exception as exc:
                log.debug("realtime consumer not recreated yet: %s", exc)
                await asyncio.sleep(0.5)
                continue
            self.resubscribed += 1
            log.info("realtime consumer recreated after a NATS reconnect, from sequence %d", self._seq + 1)
            return
        log.error("realtime consumer not recreated after a NATS reconnect; the client library's check remains")

    async def stop(self) -> None:
        if self._resubscribing is not None:
            self._resubscribing.cancel()
        if self._relay is not None:
            with contextlib.suppress(Exception):
                await self._relay.unsubscribe()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for clients in self.clients.values():
            for client in clients:
                client.close(1001, "server shutting down")

    # ---- registry ------------------------------------------------------------------

    def add(self, client: Client) -> None:
        self.clients[client.org_id].add(client)
        SOCKETS.inc()

    def remove(self, client: Client) -> None:
        clients = self.clients.get(client.org_id)
        if clients is not None and client in clients:
            clients.discard(client)
            SOCKETS.dec()
            if not clients:
                del self.clients[client.org_id]

    def _close_where(self, code: int, reason: str, **match: str) -> int:
        closed = 0
        for clients in list(self.clients.values()):
            for client in list(clients):
                if all(getattr(client, k) == v for k, v in match.items()):
                    client.close(code, reason)
                    closed += 1
        return closed

    # ---- inbound messages ----------------------------------------------------------

    async def _on_realtime(self, msg: Msg) -> None:
        if telemetry.enabled():  # a span per frame, in the trace of the change it reports
            with telemetry.consumer_span("realtime relay", msg.headers):
                await self._relay_frame(msg)
        else:
            await self._relay_frame(msg)

    async def _relay_frame(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._seq:  # already relayed (a recreated consumer overlapping the old one)
            return
        self._seq = seq
        parts = msg.subject.split(".")
        if len(parts) < 3:
            return
        clients = self.clients.get(parts[1])
        if not clients:
            return
        frame = Frame(seq, msg.data)
        table = parts[2]
        queued = 0
        for client in list(clients):
            if client.wants(table):
                queued += self.offer(client, frame)
        if queued:
            DELIVERED.inc(queued)  # once per message: a metric's lock per client cost ~20 % of the fan-out

    def offer(self, client: Client, frame: Frame) -> bool:
        """Queue `frame` for `client` without waiting; a client whose queue is full is closed."""
        if client.close_code is not None or frame.seq <= client.last_seq:
            return False
        try:
            client.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            DROPPED.inc()
            log.warning("closing a slow realtime client of org %s", client.org_id)
            self.remove(client)
            client.close(1013, "client too slow; reconnect")
            return False

    async def _on_membership_removed(self, msg: Msg) -> None:
        removed = _decode(msg, contracts.MembershipRemoved)
        if removed is not None:
            self._close_where(*MEMBERSHIP_REMOVED, org_id=str(removed.org_id), user_id=str(removed.user_id))

    async def _on_session_revoked(self, msg: Msg) -> None:
        revoked = _decode(msg, contracts.SessionRevoked)
        if revoked is None:
            return
        if revoked.session_ids:
            for session_id in revoked.session_ids:
                self._close_where(*SESSION_ENDED, session_id=str(session_id))
        else:
            self._close_where(*SESSION_ENDED, user_id=str(revoked.user_id))

    async def _on_token_revoked(self, msg: Msg) -> None:
        revoked = _decode(msg, contracts.TokenRevoked)
        if revoked is not None:
            self._close_where(*SESSION_ENDED, session_id=token_stream_key(str(revoked.token_id)))

    async def _on_session_switched(self, msg: Msg) -> None:
        switched = _decode(msg, contracts.SessionSwitched)
        if switched is None:
            return
        for clients in list(self.clients.values()):
            for client in list(clients):
                if client.session_id == str(switched.session_id) and client.org_id != str(switched.org_id):
                    client.close(*ORG_SWITCHED)

    # ---- resume ----------------------------------------------------------------------

    async def backlog(
        self, org_id: str, since: int, limit: int = 10_000, client: Client | None = None
    ) -> list[tuple[int, bytes]]:
        """What `org_id` published after stream sequence `since` (oldest first, at most `limit`),
        read with a short-lived consumer filtered on the organisation's subjects (and on what
        `client` wants, when given).

        All of it or an in-order prefix, never a gap: a fetch that times out (a busy or restarting
        server) is retried until `BACKLOG_SECONDS`; if the rest still cannot be read, `client` is
        closed with 1013 after the prefix, so it resumes from the prefix's last frame."""
        assert self._nc is not None
        js = self._nc.jetstream()
        info = await js.stream_info(REALTIME.name)
        first = max(since + 1, info.state.first_seq)
        if first > info.state.last_seq:
            return []
        psub = await js.pull_subscribe(
            f"realtime.{org_id}.>",
            stream=REALTIME.name,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=first,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        found: list[tuple[int, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BACKLOG_SECONDS
        try:
            # How many of the organisation's messages there are from `first` on: with none, no
            # fetch (which would only end at its timeout); with some, read until the last of them.
            pending = (await psub.consumer_info()).num_pending
            while pending and len(found) < limit:
                try:
                    batch = await psub.fetch(500, timeout=0.5)
                except TimeoutError:
                    if loop.time() < deadline:
                        continue
                    log.warning("realtime backlog of org %s incomplete after %.0f s", org_id, BACKLOG_SECONDS)
                    if client is not None:
                        client.close(1013, "realtime backlog unavailable; reconnect")
                    break
                found += [
                    (m.metadata.sequence.stream, m.data)
                    for m in batch
                    if client is None or client.wants(table_of(m.subject))
                ]
                pending = batch[-1].metadata.num_pending
            if pending and client is not None:  # more than `limit`: the rest on its next resume
                client.close(1013, "realtime backlog too long; reconnect")
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        return found[:limit]


def _decode(msg: Msg, contract: type[EventT]) -> EventT | None:
    """The identity event of `msg`, or None (logged) when it is not one: a malformed message is
    dropped, never raised into the subscription's callback."""
    try:
        return contract.decode(msg.data)
    except contracts.ContractError as exc:
        log.warning("ignoring a malformed %s event: %s", msg.subject, exc)
        return None
