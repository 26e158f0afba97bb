"""Open realtime streams are re-checked while they last.

The handshake checks the session once; identity events close the sockets of ended sessions,
removed members and switched organisations, but nothing announces a session that simply
expires (and an event can be missed). So every stream asks identity again, every
`interval` seconds, who holds its cookie, and closes itself with the same codes as the
identity events when the answer no longer allows it to follow its organisation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from icp_common.errors import DomainError
from icp_common.identity import Identity, require_role

from .realtime import MEMBERSHIP_REMOVED, ORG_SWITCHED, SESSION_ENDED, Client, token_stream_key

log = logging.getLogger(__name__)

Authenticate = Callable[[str | None], Awaitable[Identity]]


def stream_key(identity: Identity) -> str:
    """What a stream was opened with: its session, or its API token (which has no session)."""
    if identity.token_id:
        return token_stream_key(identity.token_id)
    return identity.session_id or ""


def verdict(client: Client, identity: Identity) -> tuple[int, str] | None:
    """Why `client` must close now that its cookie resolves to `identity` (None: it may stay)."""
    if identity.state != "ok" or stream_key(identity) != client.session_id:
        return SESSION_ENDED
    if identity.org_id != client.org_id:
        return ORG_SWITCHED
    try:
        require_role(identity, "viewer")
    except DomainError:
        return MEMBERSHIP_REMOVED
    return None


async def revalidate(client: Client, token: str | None, authenticate: Authenticate, interval: float) -> None:
    """Until `client` closes: every `interval` seconds, authenticate its cookie again and close
    it if the session, the membership or the active organisation no longer allow it. Identity
    being unreachable is not a verdict: the stream stays open and is checked next time."""
    while True:
        try:
            await asyncio.wait_for(client.closed.wait(), interval)
            return  # closed by someone else
        except TimeoutError:
            pass
        try:
            identity = await authenticate(token)
        except DomainError as exc:
            log.warning("realtime re-check of org %s skipped: %s", client.org_id, exc.detail)
            continue
        closing = verdict(client, identity)
        if closing is not None:
            log.info("closing a realtime client of org %s on re-check: %s", client.org_id, closing[1])
            client.close(*closing)
            return
