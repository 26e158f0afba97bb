"""Commands to the workers over NATS (stream PIPELINES), written to the outbox in the caller's
transaction and defined once here for both sides:

* `pipelines.runs.queued` `{"run_id", "org_id"}`: a run became queued; idle workers claim runs.
* `pipelines.runs.cancel` `{"run_ids": [...]}`: these runs ended elsewhere (cancel, reaper); the
  worker executing one kills its process.

Both are hints: a worker that misses one finds the same facts at its next sweep or heartbeat."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.nats import StreamSpec
from icp_common.outbox import OutboxMessage

from .db import outbox

PIPELINES = StreamSpec("PIPELINES", ["pipelines.>"], max_age_seconds=24 * 3600)
RUN_QUEUED_SUBJECT = "pipelines.runs.queued"
RUN_CANCEL_SUBJECT = "pipelines.runs.cancel"


def wake_up_messages(runs: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> list[OutboxMessage]:
    """One wake-up per queued run, as (run id, org id)."""
    return [OutboxMessage(RUN_QUEUED_SUBJECT, {"run_id": str(r), "org_id": str(o)}) for r, o in runs]


async def stop_runs(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> None:
    """Tell the workers to kill the processes of these runs (if one of them executes them)."""
    if run_ids:
        await outbox.enqueue(session, RUN_CANCEL_SUBJECT, {"run_ids": [str(r) for r in run_ids]})


def parse_stop(data: bytes) -> list[uuid.UUID]:
    """The run ids of a cancel command (malformed entries are ignored)."""
    try:
        raw = json.loads(data).get("run_ids") or []
    except (ValueError, AttributeError):
        return []
    ids: list[uuid.UUID] = []
    for value in raw if isinstance(raw, list) else []:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids
