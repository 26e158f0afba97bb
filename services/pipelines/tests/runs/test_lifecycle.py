"""The run state machine (issue 16): one table of allowed moves, enforced by the one module that
changes statuses, and no other module writing a run's or a backfill's status."""

from __future__ import annotations

import ast
import asyncio
import uuid
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text

import icp_pipelines
from icp_pipelines.execution import events
from icp_pipelines.execution.events import RunRef
from icp_pipelines.runs import lifecycle
from icp_pipelines.runs.status import (
    INFLIGHT,
    RUN_TRANSITIONS,
    STARTED,
    TERMINAL,
    UNFINISHED,
    WAITING,
    RunStatus,
)

ROOT = Path(icp_pipelines.__file__).parent


def test_every_status_has_its_moves_and_terminal_ones_have_none():
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert all(not RUN_TRANSITIONS[s] for s in TERMINAL)
    assert set(UNFINISHED) | set(TERMINAL) == set(RunStatus)
    assert set(UNFINISHED).isdisjoint(TERMINAL)
    assert set(WAITING) | set(STARTED) == set(UNFINISHED)
    assert set(INFLIGHT) == set(UNFINISHED) - {RunStatus.PENDING}
    # every unfinished run can be canceled; only the started ones can fail or succeed
    assert all(RunStatus.CANCELED in RUN_TRANSITIONS[s] for s in UNFINISHED)
    assert {s for s in RunStatus if RunStatus.SUCCESS in RUN_TRANSITIONS[s]} == set(STARTED)
    assert [s.value for s in RunStatus] == [
        "queued",
        "pending",
        "dispatched",
        "running",
        "success",
        "failed",
        "canceled",
    ]


@pytest.mark.parametrize(
    ("to", "from_"),
    [
        (RunStatus.RUNNING, (RunStatus.CANCELED,)),  # a finished run never changes again
        (RunStatus.QUEUED, (RunStatus.FAILED,)),  # retry adds runs, it never reopens one
        (RunStatus.SUCCESS, (RunStatus.QUEUED,)),
        (RunStatus.DISPATCHED, (RunStatus.PENDING,)),  # pending runs are promoted first
    ],
)
async def test_an_illegal_move_is_refused_before_any_sql(to, from_):
    with pytest.raises(ValueError, match="a run cannot move"):
        await lifecycle._move(None, [uuid.uuid4()], to, from_=from_)  # type: ignore[arg-type]


async def test_finish_run_only_completes_or_fails():
    run = RunRef(uuid.uuid4(), uuid.uuid4(), None)
    with pytest.raises(ValueError, match="finishes success or failed"):
        await lifecycle.finish_run(None, run, status=RunStatus.CANCELED)  # type: ignore[arg-type]


def _writes_status(node: ast.Call) -> bool:
    """`update(Run|Backfill)....values(status=...)` (or `**values`), or a status-writing query."""
    name = ast.unparse(node.func)
    if name.endswith(("repository.transition", "repository.claim")):
        return True
    if not (isinstance(node.func, ast.Attribute) and node.func.attr == "values"):
        return False
    receiver = ast.unparse(node.func.value)
    if "update(Run)" not in receiver and "update(Backfill)" not in receiver:
        return False
    return any(k.arg in ("status", None) for k in node.keywords)


def _status_writers() -> dict[str, int]:
    """Modules writing a run's or a backfill's status, and how many times."""
    writers: dict[str, int] = {}
    for path in ROOT.rglob("*.py"):
        module = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _writes_status(node):
                writers[module] = writers.get(module, 0) + 1
    return writers


def test_only_the_lifecycle_writes_statuses():
    writers = _status_writers()
    # The walk finds the writes it looks for: the lifecycle's calls, and the queries themselves
    # (`claim`, `transition`) in execution/repository.py, which only the lifecycle calls.
    assert writers.get("runs/lifecycle.py", 0) >= 3 and writers.get("execution/repository.py", 0) >= 1
    assert set(writers) == {"runs/lifecycle.py", "execution/repository.py"}, writers


async def test_a_run_claimed_while_it_is_canceled_is_canceled_too(db, sessions, engine, world):
    """A cancel and a worker's claim of the same queued run, the claim committing while the cancel
    waits for its row lock: the run ends canceled (and gets a stop command), never left running.
    (Found by tests-e2e/test_execution.py: canceling started runs before waiting ones missed a run
    claimed between the two statements.)"""
    async with db() as s:
        run = await lifecycle.queue_run(s, world.org_a, None, None)
    async with sessions() as claimer:
        claimed = await lifecycle.dispatch_runs(claimer, "worker-1", 10)  # row locked, not committed
        assert [r.id for r in claimed] == [run.id]

        async def cancel() -> list[object]:
            async with db() as s:
                return list(await lifecycle._cancel(s, [run.id], "test"))

        canceling = asyncio.create_task(cancel())
        waiting = text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        async with engine.connect() as conn, asyncio.timeout(30):
            while not canceling.done() and not await conn.scalar(waiting):
                await asyncio.sleep(0.01)
        await claimer.commit()
    changed = await canceling
    assert [(r.id, r.status) for r in changed] == [(run.id, "canceled")]  # type: ignore[attr-defined]
    async with db() as s:
        stops = (await s.execute(text("SELECT payload FROM outbox WHERE subject = 'pipelines.runs.cancel'"))).scalars()
        assert [str(run.id) in p for p in stops] == [True]


async def test_a_backfill_canceled_while_its_running_run_stores_events_does_not_deadlock(db, sessions, engine, world):
    """The worker storing a running run's events holds the run's row (FOR SHARE, `record_events`)
    and then inserts events referencing the backfill (a foreign-key check: FOR KEY SHARE on the
    backfill row); a backfill cancel holds the backfill row and then updates the run. With the
    backfill locked FOR UPDATE the two waited for each other: PostgreSQL killed one (40P01, a 500
    of `POST /api/backfills/{id}/cancel`). Locked FOR NO KEY UPDATE, the foreign-key check does
    not wait: the events are stored, then the cancel goes on."""
    async with db() as s:
        backfill = await lifecycle.create_backfill(
            s, world.org_a, None, start_date=date(2024, 1, 1), end_date=date(2024, 1, 3), concurrency=1
        )
    async with db() as s:
        [run] = await lifecycle.claim_runs(s, "worker-1", 10)
    assert run.status == RunStatus.RUNNING and run.backfill_id == backfill.id
    ref = RunRef.of(run)
    caller = SimpleNamespace(org_id=world.org_a, email="editor@example.com")
    async with sessions() as worker:
        assert await lifecycle.record_events(worker, ref, [])  # the run's row held FOR SHARE

        async def cancel() -> str:
            async with db() as s:
                return str((await lifecycle.cancel_backfill(s, caller, backfill.id)).status)  # type: ignore[arg-type]

        canceling = asyncio.create_task(cancel())
        waiting = text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        async with engine.connect() as conn, asyncio.timeout(30):
            while not canceling.done() and not await conn.scalar(waiting):
                await asyncio.sleep(0.01)
        assert not canceling.done()  # the cancel holds the backfill and waits for the run
        await lifecycle.insert_events(worker, [events.row(ref, "log", message="a line", level="INFO")])
        await worker.commit()
    assert await canceling == "canceled"
    async with db() as s:
        rows = (await s.execute(text("SELECT status FROM runs WHERE backfill_id = :b"), {"b": backfill.id})).scalars()
        assert sorted(rows) == ["canceled"] * 3
        logged = await s.scalar(
            text("SELECT count(*) FROM events WHERE run_id = :r AND message = 'a line'"), {"r": run.id}
        )
        assert logged == 1
