"""`GET /api/runs/{id}/logs` (issue 19): the lines a run's code wrote (stdout, stderr, Python
`logging`) and the worker's final line, in order, a page at a time (`after` = the `seq` of the
last line read). Live lines also reach `/api/ws` clients that opt in (`?subscribe=run_logs`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from icp_common.caller import ViewerCaller

from ..deps import SessionDep
from ..execution.schemas import AUTH_ERRORS, errors
from ..formats import pg_json_value
from . import repository, service
from .models import RunLog

router = APIRouter(prefix="/api/runs", tags=["runs"])

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


class RunLogLine(BaseModel):
    seq: int
    timestamp: str
    stream: str  # stdout | stderr | logging | system
    asset: str | None
    message: str


class RunLogPage(BaseModel):
    items: list[RunLogLine]
    next_cursor: int | None  # `after` of the next page; null when this page is not full


@router.get(
    "/{run_id}/logs",
    response_model=RunLogPage,
    responses=errors(**AUTH_ERRORS, e404="`Run <id> not found` (unknown, or of another organisation)"),
)
async def run_logs(
    caller: ViewerCaller,
    run_id: uuid.UUID,
    db: SessionDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> RunLogPage:
    """A run's log lines with `seq` > `after`, oldest first, at most `limit`."""
    if not await repository.exists(db, caller.org_id, run_id):
        raise service.not_found(run_id)
    rows = (
        await db.scalars(
            select(RunLog)
            .where(RunLog.run_id == run_id, RunLog.org_id == caller.org_id, RunLog.seq > after)
            .order_by(RunLog.seq)
            .limit(limit)
        )
    ).all()
    items = [
        RunLogLine(seq=r.seq, timestamp=pg_json_value(r.timestamp), stream=r.stream, asset=r.asset, message=r.message)
        for r in rows
    ]
    return RunLogPage(items=items, next_cursor=items[-1].seq if len(items) == limit else None)
