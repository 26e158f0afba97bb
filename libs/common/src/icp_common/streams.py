"""The JetStream streams shared between services (publisher and consumers ensure the same
configuration, so either may start first)."""

from __future__ import annotations

from .nats import StreamSpec

# Realtime row changes of the pipelines service: realtime.<org_id>.<table> -> {table, event, record}.
# Kept for an hour: the window in which a WebSocket/SSE client can resume with ?since=/Last-Event-ID.
REALTIME = StreamSpec("REALTIME", ["realtime.>"], max_age_seconds=3600)

# Commands to the pipelines workers (pipelines.runs.queued / .cancel, icp_common.contracts): hints,
# a worker that misses one catches up at its next sweep or heartbeat.
PIPELINES = StreamSpec("PIPELINES", ["pipelines.>"], max_age_seconds=24 * 3600)

# Identity domain events: identity.invitation.*, identity.membership.*, identity.session.*.
IDENTITY = StreamSpec("IDENTITY", ["identity.>"], max_age_seconds=7 * 24 * 3600)


def realtime_subject(org_id: str, table: str) -> str:
    return f"realtime.{org_id}.{table}"
