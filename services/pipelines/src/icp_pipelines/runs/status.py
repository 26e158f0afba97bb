"""Run and backfill statuses, their allowed transitions and the sets the lifecycle works with.

`str` enums: a status is stored, compared and serialised as its plain value ("queued", ...), so the
database, the API and the realtime messages see exactly the strings of the spec. The transitions
themselves are made in `runs.lifecycle` (and nowhere else)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    PENDING = "pending"  # a backfill's run waiting for a free slot
    DISPATCHED = "dispatched"  # claimed by a worker
    RUNNING = "running"  # its process executes it
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


# Every status a run can move to from each status (`lifecycle` refuses any other move).
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.QUEUED, RunStatus.CANCELED}),
    RunStatus.QUEUED: frozenset({RunStatus.DISPATCHED, RunStatus.CANCELED}),
    # A dispatched run that cannot start (or whose worker is lost) ends without running.
    RunStatus.DISPATCHED: frozenset({RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}

WAITING = (RunStatus.PENDING, RunStatus.QUEUED)  # no process yet: a cancel is immediate
STARTED = (RunStatus.DISPATCHED, RunStatus.RUNNING)  # a worker owns it (heartbeats, can be reaped)
INFLIGHT = (RunStatus.QUEUED, *STARTED)  # holds one of its backfill's slots
UNFINISHED = (RunStatus.PENDING, *INFLIGHT)
TERMINAL = (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED)  # never changed again
RETRYABLE = (RunStatus.FAILED, RunStatus.CANCELED)  # a backfill's retry-failed runs these again


class BackfillStatus(StrEnum):
    QUEUED = "queued"  # reserved
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE_BACKFILL = (BackfillStatus.QUEUED, BackfillStatus.RUNNING)


def can_move(current: str, target: RunStatus) -> bool:
    return target in RUN_TRANSITIONS[RunStatus(current)]
