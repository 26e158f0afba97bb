"""The JetStream streams shared between services (publisher and consumers ensure the same
configuration, so either may start first)."""

from __future__ import annotations

from .contracts import ALERT_SUBJECT_PREFIX
from .nats import DurableSpec, StreamSpec

# Realtime row changes of the pipelines service: realtime.<org_id>.<table> -> {table, event, record}.
# The resume window of a WebSocket/SSE client (?since=/Last-Event-ID): the last hour, at most
# REALTIME_MAX_BYTES in all (oldest dropped first). The size bound also keeps nats-server's cache
# of the block being written at 4 MB instead of 8 MB. No per-subject limit: nats-server enforces
# one by finding each subject's first message on every store, which loaded (allocated) a whole
# 4 MB block per frame once an organisation's table was at its limit — 2 GB of allocations in one
# benchmark, the collector running continuously.
REALTIME_MAX_BYTES = 24 * 1024 * 1024
REALTIME = StreamSpec("REALTIME", ["realtime.>"], max_age_seconds=3600, max_bytes=REALTIME_MAX_BYTES)

# Pipelines domain events for failure alerts (pipelines.alerts.<kind>, icp_common.contracts),
# read by notifications' durable consumer. The workers' commands (pipelines.runs.*) are hints on
# core NATS, outside every stream (contracts.HINT_SUBJECTS).
PIPELINES = StreamSpec("PIPELINES", [f"{ALERT_SUBJECT_PREFIX}.>"], max_age_seconds=24 * 3600)

# Identity domain events: identity.invitation.*, identity.membership.*, identity.session.*.
IDENTITY = StreamSpec("IDENTITY", ["identity.>"], max_age_seconds=7 * 24 * 3600)


def realtime_subject(org_id: str, table: str) -> str:
    return f"realtime.{org_id}.{table}"


# Audit entries (icp_common.audit): audit.<org_id> -> one entry, stored by identity's durable
# consumer (the table is the record; the stream only carries entries there). Interest retention:
# an entry leaves the stream once identity has stored it (or after a week), and the stream's write
# block is 4 MB instead of 8 in nats-server's memory. The durable is part of the stream's contract,
# created with it by whichever service ensures it first: no entry finds the stream without it.
AUDIT_DURABLE = DurableSpec("identity-audit", "audit.>", ack_wait_seconds=60)
AUDIT = StreamSpec("AUDIT", ["audit.>"], max_age_seconds=7 * 24 * 3600, retention="interest", durables=(AUDIT_DURABLE,))
