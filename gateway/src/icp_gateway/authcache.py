"""The gateway's cache of authenticated sessions: identity's `ok` answers, kept a few seconds.

Keyed by a hash of the session token (a raw token is never kept), bounded (LRU), and never kept
past the TTL or the session's own expiry. Only `ok` answers are kept: an unknown or expired token
costs an identity call each time, so random tokens cannot fill the cache and evict live sessions.

Invalidation is part of the design:
- identity's events (`identity.session.revoked`, `identity.session.switched`,
  `identity.membership.removed`, `identity.token.revoked`) drop the matching entries on every
  gateway replica (an API token's entry carries its owner's user id: a removed owner's tokens go
  with their sessions);
- the gateway that proxied a successful state-changing identity request drops the caller's and
  their organisation's entries before it answers (the next request through it asks identity);
- a lost event leaves an answer at most the TTL; a NATS reconnect (events may have been missed
  meanwhile) drops everything.
An Authenticate call that was in flight while entries were dropped is used for its own request
but not stored (a generation counter): it may predate the change.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter

from icp_common import contracts
from icp_common.identity import Identity

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=contracts.Contract)

HITS = Counter("icp_gateway_auth_cache_hits_total", "Requests authenticated from the session cache")
MISSES = Counter("icp_gateway_auth_cache_misses_total", "Requests that asked identity (cache miss or off)")
DROPPED = Counter("icp_gateway_auth_cache_dropped_total", "Cached sessions dropped by an invalidation")


def token_key(token: str) -> bytes:
    """The cache key of a session token (a digest: the raw token is not kept)."""
    return hashlib.blake2b(token.encode("utf-8", "surrogateescape"), digest_size=20).digest()


@dataclass(frozen=True, slots=True)
class _Entry:
    identity: Identity
    deadline: float  # monotonic


class AuthCache:
    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._generation = 0  # bumped by every invalidation
        self._subs: list[Subscription] = []

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.deadline:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.identity

    def put(self, key: bytes, identity: Identity, generation: int, expires_in: float | None = None) -> None:
        """Keep an `ok` answer obtained when the cache was at `generation` (not when entries were
        dropped since: the answer may predate the change), at most the TTL and `expires_in`."""
        if identity.state != "ok":
            self._entries.pop(key, None)  # a fresh refusal ends what was cached
            return
        if not self.enabled or generation != self._generation:
            return
        lifetime = self.ttl if expires_in is None else min(self.ttl, expires_in)
        if lifetime <= 0:
            return
        self._entries[key] = _Entry(identity, self._clock() + lifetime)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    # ---- invalidation -----------------------------------------------------------------

    def drop_where(self, predicate: Callable[[Identity], bool]) -> int:
        """Drop the entries whose identity matches (a scan: invalidations are rare, the cache small)."""
        self._generation += 1
        doomed = [key for key, entry in self._entries.items() if predicate(entry.identity)]
        for key in doomed:
            del self._entries[key]
        DROPPED.inc(len(doomed))
        return len(doomed)

    def clear(self) -> None:
        self._generation += 1
        DROPPED.inc(len(self._entries))
        self._entries.clear()

    def fence(self, identity: Identity) -> None:
        """After a successful state-changing identity request of `identity`: drop every session
        of its user (its own entry included) and every entry of its active organisation."""
        if identity.state != "ok":
            return  # nothing of it is cached
        user_id, org_id = identity.user_id, identity.org_id
        self.drop_where(lambda i: i.user_id == user_id or (org_id is not None and i.org_id == org_id))

    # ---- identity events ----------------------------------------------------------------

    async def follow(self, nc: NATS) -> None:
        """Subscribe to identity's events (core NATS: every replica gets each one)."""
        for subject, handler in (
            (contracts.SESSION_REVOKED, self._on_session_revoked),
            (contracts.SESSION_SWITCHED, self._on_session_switched),
            (contracts.MEMBERSHIP_REMOVED, self._on_membership_removed),
            (contracts.TOKEN_REVOKED, self._on_token_revoked),
        ):
            self._subs.append(await nc.subscribe(subject, cb=handler))

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be closing already
                log.debug("auth cache unsubscribe: %s", exc)
        self._subs.clear()
        self.clear()

    async def on_reconnected(self) -> None:
        self.clear()  # events may have been published while we were away

    def _decode(self, msg: Msg, contract: type[EventT]) -> EventT | None:
        """The event of `msg`; None (everything dropped) when it is not one: an event that
        cannot be read may have been a revocation."""
        try:
            return contract.decode(msg.data)
        except contracts.ContractError as exc:
            log.warning("malformed %s event (session cache cleared): %s", msg.subject, exc)
            self.clear()
            return None

    async def _on_session_revoked(self, msg: Msg) -> None:
        event = self._decode(msg, contracts.SessionRevoked)
        if event is None:
            return
        user_id, session_ids = str(event.user_id), {str(s) for s in event.session_ids}
        self.drop_where(lambda i: i.user_id == user_id or i.session_id in session_ids)

    async def _on_session_switched(self, msg: Msg) -> None:
        # Every session of the user: the profile's last organisation changed too.
        event = self._decode(msg, contracts.SessionSwitched)
        if event is not None:
            user_id = str(event.user_id)
            self.drop_where(lambda i: i.user_id == user_id)

    async def _on_membership_removed(self, msg: Msg) -> None:
        event = self._decode(msg, contracts.MembershipRemoved)
        if event is not None:
            user_id, org_id = str(event.user_id), str(event.org_id)
            self.drop_where(lambda i: i.user_id == user_id and i.org_id == org_id)

    async def _on_token_revoked(self, msg: Msg) -> None:
        event = self._decode(msg, contracts.TokenRevoked)
        if event is not None:
            token_id = str(event.token_id)
            self.drop_where(lambda i: i.token_id == token_id)
