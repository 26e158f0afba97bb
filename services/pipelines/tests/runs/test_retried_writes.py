"""Issue 22 item 1: the worker retries a lifecycle write through a database outage, including a
write whose COMMIT may have landed although the connection dropped before the answer. Which
errors are retried, and each write done twice stores it once (no second start, finish or event)."""

from __future__ import annotations

import errno
import socket
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError

from icp_pipelines.db import is_outage
from icp_pipelines.execution import events
from icp_pipelines.execution import repository as execution_repository
from icp_pipelines.execution.events import RunRef
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs.status import RunStatus


class _Adapted(Exception):
    """What SQLAlchemy's asyncpg adapter raises: an exception carrying the server's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(cls: type[DBAPIError], orig: Exception, invalidated: bool = False) -> DBAPIError:
    return cls("COMMIT", None, orig, connection_invalidated=invalidated)


def _cause(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


OUTAGES = {
    "refused at connect": ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    "reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "connect timeout": TimeoutError(),
    "unresolvable host": socket.gaierror(-2, "Name or service not known"),
    "closed mid-statement": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    "lost during commit": _wrapped(DBAPIError, _Adapted("XX000"), invalidated=True),
    "interface error": _wrapped(InterfaceError, Exception("connection is closed")),
    "operational error": _wrapped(OperationalError, Exception("server closed the connection unexpectedly")),
    "admin shutdown": _wrapped(DBAPIError, _Adapted("57P01")),
    "crash shutdown": _wrapped(DBAPIError, _Adapted("57P02")),
    "starting up": _wrapped(DBAPIError, _Adapted("57P03")),
    "connection failure": _wrapped(DBAPIError, _Adapted("08006")),
    "wrapped by a caller": _cause(RuntimeError("cannot store events"), ConnectionRefusedError()),
}
NOT_OUTAGES = {
    "unique violation": _wrapped(IntegrityError, _Adapted("23505")),
    "syntax error": _wrapped(ProgrammingError, _Adapted("42601")),
    "serialization failure (with_retry's own retry)": _wrapped(DBAPIError, _Adapted("40001")),
    "bad value": ValueError("a run finishes success or failed"),
    "bug": AssertionError("unreachable"),
    "key error": KeyError("id"),
}


@pytest.mark.parametrize("error", OUTAGES.values(), ids=OUTAGES.keys())
def test_connection_errors_are_an_outage(error: Exception) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("error", NOT_OUTAGES.values(), ids=NOT_OUTAGES.keys())
def test_errors_of_the_statement_are_not_retried_as_an_outage(error: Exception) -> None:
    assert not is_outage(error)


async def _running(db: Any, org_id: Any) -> RunRef:
    async with db() as s:
        queued = await lifecycle.queue_run(s, org_id, None, None)
    async with db() as s:
        await lifecycle.dispatch_runs(s, "worker-1", 1)
    run = RunRef.of(queued)
    async with db() as s:
        assert await lifecycle.start_run(s, run) is not None
    return run


async def _events(db: Any, run: RunRef) -> list[tuple[str, str | None]]:
    async with db() as s:
        rows = await s.execute(
            text("SELECT event_type, message FROM events WHERE run_id = :r ORDER BY seq"), {"r": run.id}
        )
        return [(r.event_type, r.message) for r in rows]


async def test_a_start_retried_after_its_commit_landed_still_starts_the_run(db: Any, world: Any) -> None:
    run = await _running(db, world.org_a)
    async with db() as s:
        again = await lifecycle.start_run(s, run)  # the worker did not see the first answer
    assert again is not None and again.status == RunStatus.RUNNING


async def test_events_and_finish_retried_after_their_commit_landed_are_stored_once(db: Any, world: Any) -> None:
    run = await _running(db, world.org_a)
    batch = [events.row(run, "log", message=f"step {i}") for i in range(3)]
    last = [events.row(run, "log", message="last step")]
    for _ in range(2):  # the second time: as if the first commit's answer was lost
        async with db() as s:
            assert await lifecycle.record_events(s, run, batch)
    for _ in range(2):
        async with db() as s:
            assert await lifecycle.finish_run(s, run, status=RunStatus.SUCCESS, events_before=last)
    assert await _events(db, run) == [("log", "step 0"), ("log", "step 1"), ("log", "step 2"), ("log", "last step")]
    async with db() as s:
        status = await s.scalar(text("SELECT status FROM runs WHERE id = :r"), {"r": run.id})
        published = await s.scalar(
            text("SELECT count(*) FROM outbox WHERE subject LIKE 'realtime.%' AND payload LIKE '%' || :r || '%'"),
            {"r": str(run.id)},
        )
    assert status == "success"
    # one realtime message per change: queued, dispatched, running, success + one per event
    assert published == 4 + 4


async def test_a_finish_retried_after_another_end_is_not_the_outcome(db: Any, world: Any) -> None:
    """The reaper (or a cancel) ended the run first: the worker's retried finish changes nothing."""
    run = await _running(db, world.org_a)
    async with db() as s:
        await lifecycle._cancel(s, [run.id], "test")
    async with db() as s:
        assert not await lifecycle.finish_run(s, run, status=RunStatus.SUCCESS)
    async with db() as s:
        assert await s.scalar(text("SELECT status FROM runs WHERE id = :r"), {"r": run.id}) == "canceled"


async def test_the_reaper_counts_a_heartbeat_from_the_database_servers_start(db: Any, world: Any) -> None:
    """No worker can heartbeat while the server is down: after a restart, every run gets a whole
    `heartbeat_timeout` from the server's start before it is declared lost."""
    run = await _running(db, world.org_a)
    async with db() as s:
        await s.execute(text("UPDATE runs SET heartbeat_at = now() - interval '1 day' WHERE id = :r"), {"r": run.id})
        up = await s.scalar(text("SELECT extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())"))
    async with db() as s:
        # The heartbeat is a day old, but the server started less than the timeout ago.
        assert (
            await execution_repository.lost_runs(s, heartbeat_timeout=float(up) + 600, dispatch_timeout=1e6, limit=10)
            == []
        )
        lost = await execution_repository.lost_runs(s, heartbeat_timeout=1, dispatch_timeout=1e6, limit=10)
    assert [r.id for r in lost] == [run.id]


async def test_a_claim_whose_answer_was_lost_is_found_by_the_next_one(db: Any, world: Any) -> None:
    """The claim committed but the worker saw an error: its next claim takes the runs it already
    holds (only its own, only those it does not execute yet, started by the claim or still
    dispatched) instead of leaving them to the reaper; the next claim starts the dispatched one."""
    async with db() as s:
        mine = await lifecycle.queue_run(s, world.org_a, None, None)
        theirs = await lifecycle.queue_run(s, world.org_a, None, None)
        old = await lifecycle.queue_run(s, world.org_a, None, None)
    async with db() as s:
        assert [r.id for r in await lifecycle.claim_runs(s, "worker-1", 1)] == [mine.id]  # claimed and started
        await lifecycle.dispatch_runs(s, "worker-2", 1)
        await lifecycle.dispatch_runs(s, "worker-1", 1)  # dispatched only (a claim of an older worker)
    async with db() as s:
        assert [r.id for r in await execution_repository.dispatched_to(s, "worker-1", [])] == [mine.id, old.id]
        assert [r.id for r in await execution_repository.dispatched_to(s, "worker-1", [mine.id])] == [old.id]
        assert [r.id for r in await execution_repository.dispatched_to(s, "worker-2", [])] == [theirs.id]
    async with db() as s:
        unseen = await execution_repository.dispatched_to(s, "worker-1", [])
        claimed = await lifecycle.claim_runs(s, "worker-1", 0, unseen)
        assert [(r.id, r.status) for r in claimed] == [(mine.id, "running"), (old.id, "running")]
    async with db() as s:
        for run in (mine, old):
            assert await lifecycle.finish_run(s, RunRef.of(run), status=RunStatus.SUCCESS)
    async with db() as s:
        assert await execution_repository.dispatched_to(s, "worker-1", []) == []  # finished: not a lost claim
