"""Commands to the workers over NATS (stream PIPELINES), written to the outbox in the caller's
transaction by `runs.lifecycle` and read by the worker; subjects and payloads are the shared
contracts (`icp_common.contracts`):

* `pipelines.runs.queued` (RunQueued): a run became queued; idle workers claim runs.
* `pipelines.runs.cancel` (RunCancel): these runs ended elsewhere (cancel, reaper); the worker
  executing one kills its process.

Both are hints: a worker that misses one finds the same facts at its next sweep or heartbeat."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.contracts import RUN_CANCEL, RUN_QUEUED, ContractError, RunCancel, RunQueued
from icp_common.outbox import OutboxMessage

from .db import outbox

log = logging.getLogger(__name__)

__all__ = ["RUN_CANCEL", "RUN_QUEUED", "parse_stop", "stop_runs", "wake_up_messages"]


def wake_up_messages(runs: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> list[OutboxMessage]:
    """One wake-up per queued run, as (run id, org id)."""
    return [OutboxMessage(RUN_QUEUED, RunQueued(run_id=r, org_id=o).payload()) for r, o in runs]


async def stop_runs(session: AsyncSession, run_ids: Sequence[uuid.UUID]) -> None:
    """Tell the workers to kill the processes of these runs (if one of them executes them)."""
    if run_ids:
        await outbox.enqueue(session, RUN_CANCEL, RunCancel(run_ids=list(run_ids)).payload())


def parse_stop(data: bytes) -> list[uuid.UUID]:
    """The run ids of a cancel command; none if it is not one (logged)."""
    try:
        return RunCancel.decode(data).run_ids
    except ContractError as exc:
        log.warning("ignored a malformed %s message: %s", RUN_CANCEL, exc)
        return []
