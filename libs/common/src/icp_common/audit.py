"""Audit log entries (issue 18.3): who did what to which target, from where, with what outcome.

A service writes an entry to its outbox in the transaction of the change it describes (so a
change never commits without its entry); the relay publishes it on `audit.<org_id>` (stream
AUDIT) and identity's durable consumer stores it once (the entry's id is the message id and the
row's primary key). Identity writes its own entries straight into its table.

Entries never carry secrets: only ids, the action name, the caller and request metadata.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from .context import current_request_id
from .db import unit_of_work
from .identity import REQUEST_ID_HEADER, Identity
from .outbox import Outbox, OutboxMessage

log = logging.getLogger(__name__)

Outcome = Literal["success", "denied"]
ActorType = Literal["user", "token", "service_account", "system"]
MAX_USER_AGENT = 512
# Path segments that name an action rather than a collection (POST /api/runs/{id}/cancel).
_ACTION_SEGMENTS = frozenset({"run", "backfill", "cancel", "retry", "trigger", "accept", "revoke", "switch", "test"})
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def audit_subject(org_id: str) -> str:
    return f"audit.{org_id}"


def client_ip(headers: Mapping[str, str], peer: str | None) -> str | None:
    """The client's address: the first X-Forwarded-For entry. Traefik trusts no forwarded
    headers from clients (no `forwardedHeaders.trustedIPs`), so it replaces a client's own
    X-Forwarded-For with the peer address; the gateway appends Traefik's address after it."""
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return peer


def actor_of(identity: Identity) -> dict[str, Any]:
    """`{"type", "id", "email"}`: a token caller is shown as its token (id: the token's), a
    service-account token as the service account (its id is the token's)."""
    kind: ActorType
    if identity.state == "system":
        kind, actor_id = "system", None
    elif identity.service_account:
        kind, actor_id = "service_account", identity.token_id or identity.user_id
    elif identity.is_token:
        kind, actor_id = "token", identity.token_id
    else:
        kind, actor_id = "user", identity.user_id
    email = None if kind in ("system", "service_account") else identity.email
    return {"type": kind, "id": actor_id, "email": email}


def action_of(method: str, route_path: str) -> str:
    """An action name from a route template, for refusals raised before the route's own code:
    `POST /api/jobs/` -> jobs.create, `PUT /api/jobs/{job_id}` -> jobs.update,
    `POST /api/jobs/{job_id}/run` -> jobs.run, `DELETE /api/assets/{id}/dependencies/{up}` ->
    assets.dependencies.delete."""
    parts = [p for p in route_path.split("/") if p and p != "api"]
    literals = [p for p in parts if not p.startswith("{")]
    if not literals:
        return f"unknown.{_VERBS.get(method, method.lower())}"
    if method == "POST" and len(literals) > 1 and literals[-1] in _ACTION_SEGMENTS:
        return ".".join(literals)  # POST /jobs/{id}/run -> jobs.run
    return ".".join([*literals, _VERBS.get(method, method.lower())])


def new_entry(
    identity: Identity,
    connection: HTTPConnection | None,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None,
    *,
    outcome: Outcome = "success",
    org_id: str | uuid.UUID | None = None,
    actor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry (a JSON-able dict). `org_id` defaults to the caller's active organisation;
    `actor` overrides the caller (a sign-in records the user it signed in)."""
    headers: Mapping[str, str] = connection.headers if connection is not None else {}
    peer = connection.client.host if connection is not None and connection.client else None
    user_agent = headers.get("user-agent")
    organisation = org_id if org_id is not None else identity.org_id
    return {
        "id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "organisation_id": str(organisation) if organisation else None,
        "actor": dict(actor) if actor is not None else actor_of(identity),
        "action": action,
        "target": {"type": target_type, "id": str(target_id) if target_id is not None else None},
        "outcome": outcome,
        "request_id": current_request_id() or headers.get(REQUEST_ID_HEADER),
        "ip": client_ip(headers, peer),
        "user_agent": user_agent[:MAX_USER_AGENT] if user_agent else None,
    }


def outbox_message(entry: Mapping[str, Any]) -> OutboxMessage:
    """The entry as an outbox message (msg id = entry id: JetStream de-duplicates a re-publish)."""
    return OutboxMessage(
        audit_subject(str(entry["organisation_id"] or "none")), dict(entry), msg_id=uuid.UUID(str(entry["id"]))
    )


class Auditor:
    """Records entries through one service's outbox, in the caller's transaction."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def record(
        self,
        session: AsyncSession,
        identity: Identity,
        connection: HTTPConnection | None,
        action: str,
        target_type: str,
        target_id: str | uuid.UUID | None,
        *,
        outcome: Outcome = "success",
        org_id: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        entry = new_entry(identity, connection, action, target_type, target_id, outcome=outcome, org_id=org_id)
        await self.outbox.enqueue_many(session, [outbox_message(entry)])
        return entry

    @staticmethod
    def message(
        identity: Identity,
        connection: HTTPConnection | None,
        action: str,
        target_type: str,
        target_id: str | uuid.UUID | None,
    ) -> OutboxMessage:
        """The entry as a message for the caller's own outbox statement (no extra round trip)."""
        return outbox_message(new_entry(identity, connection, action, target_type, target_id))

    def denied_hook(
        self, sessions: Callable[[], async_sessionmaker[AsyncSession] | None]
    ) -> Callable[[HTTPConnection, Identity], Awaitable[None]]:
        """For `app.state.audit_denied`: a refused write (403) in its own short transaction."""

        async def denied(connection: HTTPConnection, identity: Identity) -> None:
            maker = sessions()
            if maker is None:
                return
            target_type, target_id = denied_target(connection)
            async with unit_of_work(maker) as session:
                await self.record(
                    session, identity, connection, denied_action(connection), target_type, target_id, outcome="denied"
                )

        return denied


def denied_action(connection: HTTPConnection) -> str:
    route = connection.scope.get("route")
    path = getattr(route, "path", None) or connection.url.path
    return action_of(connection.scope.get("method", "GET"), path)


def denied_target(connection: HTTPConnection) -> tuple[str, str | None]:
    """The refused route's target: its collection (singular, as the routes' own entries name
    it: /api/jobs/{job_id} -> "job") and the first path parameter, if any."""
    route = connection.scope.get("route")
    path = getattr(route, "path", None) or connection.url.path
    literals = [p for p in path.split("/") if p and p != "api" and not p.startswith("{")]
    kind = literals[0].removesuffix("s") if literals else "unknown"
    params = connection.scope.get("path_params") or {}
    first = next(iter(params.values()), None)
    return kind, str(first)[:200] if first is not None else None


async def record_denied(connection: HTTPConnection) -> None:
    """Called by the 403 handler for an unsafe method: the service's hook records it; a failing
    audit write is logged, never turned into another answer."""
    if connection.scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return
    hook = getattr(connection.app.state, "audit_denied", None)
    identity = connection.scope.get("icp.identity")
    if hook is None or not isinstance(identity, Identity) or not identity.is_authenticated:
        return
    try:
        await hook(connection, identity)
    except Exception:
        log.exception("could not record a denied attempt in the audit log")
