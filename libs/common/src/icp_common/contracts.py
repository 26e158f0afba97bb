"""The messages services exchange over NATS, defined once (shared like the protos, so no service
imports another's package): subjects and pydantic models of every payload.

Wire format: the outbox writes `model.payload()` (JSON mode, fields in declaration order) as compact
JSON, so field order is part of the contract: never reorder fields, only append optional ones.
Unknown fields are ignored (a publisher may add fields before its consumers know them); a missing or
malformed required field fails `decode` with `ContractError`, which consumers treat as poison
(terminate/ignore with a log line, never retry).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

# Identity domain events (stream IDENTITY, subjects identity.>; published by identity's outbox,
# message id = event_id).
INVITATION_CREATED = "identity.invitation.created"
MEMBERSHIP_REMOVED = "identity.membership.removed"
SESSION_REVOKED = "identity.session.revoked"
SESSION_SWITCHED = "identity.session.switched"
TOKEN_REVOKED = "identity.token.revoked"

# Commands to the pipelines workers. Hints, published on core NATS and stored by no stream: the
# workers listen with plain subscriptions, and one that misses a hint finds the same facts at its
# next sweep or heartbeat. (Stored, nobody read them back, and every run trigger kept a stream's
# 8 MB write block busy in nats-server's memory.)
RUN_QUEUED = "pipelines.runs.queued"
RUN_CANCEL = "pipelines.runs.cancel"
# The outbox relay publishes these subjects without JetStream (no stream may hold them).
HINT_SUBJECTS = frozenset({RUN_QUEUED, RUN_CANCEL})

# Pipelines domain events for failure alerts (stream PIPELINES, subjects pipelines.alerts.<kind>;
# published by pipelines' outbox, message id = event_id; consumed by notifications).
ALERT_SUBJECT_PREFIX = "pipelines.alerts"
ALERT_RUN_FAILED = "run_failed"
ALERT_BACKFILL_FAILED = "backfill_failed"
ALERT_RUN_STUCK = "run_stuck"
AlertKind = Literal["run_failed", "backfill_failed", "run_stuck"]
# The thresholds (minutes) at which the pipelines scheduler reports a run still running: a rule's
# `stuck_minutes` is one of them (pipelines does not know the rules, so the ladder is the contract).
STUCK_MINUTES = (5, 10, 15, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440)


class ContractError(ValueError):
    """A payload that is not the message its subject promises."""


class Contract(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def payload(self) -> dict[str, Any]:
        """What the outbox enqueues (it encodes it as compact JSON)."""
        return self.model_dump(mode="json")

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """The message of a NATS payload; ContractError when it is not one."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ContractError(f"not a {cls.__name__}: {exc.errors(include_url=False, include_input=False)}") from exc


# ---- identity events --------------------------------------------------------------------------


class InvitationCreated(Contract):
    """`identity.invitation.created`: a new invitation (a resend is a new invitation too).

    No token: the notifications service gets the accept link from identity over gRPC
    (IssueInvitationLink) when it mails it, so nothing in the (week-long) IDENTITY stream opens an
    invitation, and a token in a message (an old event, or a forged one) is ignored."""

    event_id: uuid.UUID
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    org_name: str = ""
    email: str = Field(min_length=1, max_length=320)
    role: str = ""
    inviter_name: str = ""  # the inviter's name, or their e-mail when they have no name
    inviter_email: str = ""
    expires_at: AwareDatetime


class MembershipRemoved(Contract):
    """`identity.membership.removed`: gateways close that user's sockets of the organisation."""

    event_id: uuid.UUID
    org_id: uuid.UUID
    user_id: uuid.UUID


class TokenRevoked(Contract):
    """`identity.token.revoked`: an API token was revoked; gateways forget its cached identity."""

    event_id: uuid.UUID
    org_id: uuid.UUID
    token_id: uuid.UUID


class SessionRevoked(Contract):
    """`identity.session.revoked`: every session of the user was revoked (logout)."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    session_ids: list[uuid.UUID]


class SessionSwitched(Contract):
    """`identity.session.switched`: a session's active organisation changed."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID
    org_id: uuid.UUID


# ---- realtime frames --------------------------------------------------------------------------

RealtimeTable = Literal["runs", "backfills", "events"]
RealtimeChange = Literal["INSERT", "UPDATE"]


class RealtimeFrame(Contract):
    """`realtime.<org_id>.<table>`: one changed row, relayed byte for byte by the gateway to the
    organisation's WebSocket/SSE clients (the web UI's frame contract `{table, event, record}`;
    `record` as PostgreSQL's row_to_json renders the row)."""

    table: RealtimeTable
    event: RealtimeChange
    record: dict[str, Any]


# ---- pipelines worker commands ----------------------------------------------------------------


class RunQueued(Contract):
    """`pipelines.runs.queued`: a run became queued; idle workers claim runs (a hint)."""

    run_id: uuid.UUID
    org_id: uuid.UUID


class RunCancel(Contract):
    """`pipelines.runs.cancel`: these runs ended elsewhere; the worker executing one kills it."""

    run_ids: list[uuid.UUID]


class PipelineAlert(Contract):
    """`pipelines.alerts.<kind>`: something an alert rule may be about. `event_id` is derived from
    what happened (e.g. uuid5 of the run id and kind), so a second publish of the same failure is
    the same event (JetStream dedup, then the notifications deliveries table)."""

    event_id: uuid.UUID
    kind: AlertKind
    org_id: uuid.UUID
    job_id: uuid.UUID | None = None
    job_name: str = ""
    run_id: uuid.UUID | None = None  # the failed/stuck run; for a backfill, its first failed run
    backfill_id: uuid.UUID | None = None
    partition_date: str | None = None
    error: str = ""  # the first error of the run (truncated)
    failed_runs: int = 0  # backfill_failed: how many partitions failed
    occurred_at: AwareDatetime
    stuck_minutes: int = 0  # run_stuck: the threshold (STUCK_MINUTES) the run has been running past


def alert_subject(kind: str) -> str:
    return f"{ALERT_SUBJECT_PREFIX}.{kind}"


# ---- notifications ----------------------------------------------------------------------------

DEAD_LETTER_INVITATION = "invitation"
DEAD_LETTER_ALERT = "alert"


class DeadLetter(Contract):
    """`<dead-letter prefix>.invitation`: an e-mail that could not be delivered. No invitation
    token (dead letters are for operators; the way to retry is to resend the invitation)."""

    event_id: uuid.UUID
    kind: str = DEAD_LETTER_INVITATION
    invitation_id: uuid.UUID
    org_id: uuid.UUID
    recipient: str
    attempts: int
    error: str
    failed_at: datetime


class AlertDeadLetter(Contract):
    """`<dead-letter prefix>.alert`: an alert that could not be delivered to one target (a webhook
    URL without its path and query, which may hold a token)."""

    event_id: uuid.UUID
    kind: str = DEAD_LETTER_ALERT
    alert: str  # the alert's kind (run_failed, ...)
    org_id: uuid.UUID
    target: str
    attempts: int
    error: str
    failed_at: datetime
