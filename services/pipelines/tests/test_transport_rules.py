"""Both transports, one set of rules (issue 16, item 4): limits and defaults live in the service
functions (REST rejects what gRPC's contract caps, at the same maximum), and every servicer method
checks the caller's role before it opens a transaction (`grpc_base.rpc`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import grpc
import pytest

from icp_common.caller import Member, Role
from icp_common.context import identity_var
from icp_common.errors import Forbidden
from icp_pipelines.backfills.service import MAX_CONCURRENCY
from icp_pipelines.grpc_base import ServicerBase, rpc
from icp_pipelines.runs.service import DEFAULT_LIMIT, MAX_LIMIT
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .factories import create_job
from .test_servicer import grpc_target, md, status_of, stub  # noqa: F401 (fixtures)


async def test_backfill_concurrency_is_bounded_over_grpc_as_over_rest(clients, world, stub):  # noqa: F811
    job = await create_job(clients.editor)
    body = {"start_date": "2024-01-01", "end_date": "2024-01-01", "concurrency": MAX_CONCURRENCY + 1}
    assert (await clients.editor.post(f"/api/jobs/{job['id']}/backfill", json=body)).status_code == 422
    request = pb.TriggerBackfillRequest(
        job_id=job["id"], start_date="2024-01-01", end_date="2024-01-01", concurrency=MAX_CONCURRENCY + 1
    )
    assert await status_of(stub.TriggerBackfill(request, metadata=md(world.editor))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"concurrency must be at most {MAX_CONCURRENCY}",
    )
    assert (await clients.viewer.get("/api/backfills/")).json() == []  # nothing half-created
    request.concurrency = MAX_CONCURRENCY
    created = await stub.TriggerBackfill(request, metadata=md(world.editor))
    assert created.backfill.concurrency == MAX_CONCURRENCY


async def test_run_pages_have_one_maximum_on_both_transports(clients, world, stub):  # noqa: F811
    job = await create_job(clients.editor)
    start = date(2020, 1, 1)
    end = start + timedelta(days=MAX_LIMIT)  # MAX_LIMIT + 1 runs (one backfill, one INSERT)
    body = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    created = await clients.editor.post(f"/api/jobs/{job['id']}/backfill", json=body)
    assert created.status_code == 200, created.text

    assert len((await clients.viewer.get("/api/runs/", params={"limit": MAX_LIMIT})).json()) == MAX_LIMIT
    assert (await clients.viewer.get("/api/runs/", params={"limit": MAX_LIMIT + 1})).status_code == 422
    # gRPC: 0 = the default; above the maximum = capped (its contract), at the same maximum as REST
    viewer = md(world.viewer)
    assert len((await stub.ListRuns(pb.ListRunsRequest(), metadata=viewer)).runs) == DEFAULT_LIMIT
    assert len((await stub.ListRuns(pb.ListRunsRequest(limit=600), metadata=viewer)).runs) == 600
    assert len((await stub.ListRuns(pb.ListRunsRequest(limit=5000), metadata=viewer)).runs) == MAX_LIMIT


class _Sessions:
    """A session factory that records whether a transaction was opened."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        raise AssertionError("no transaction for a refused caller")


class _Servicer(ServicerBase):
    @rpc(Role.EDITOR)
    async def Change(self, request: object, caller: Member, db: Any) -> str:
        return f"changed in {caller.org_id!r} as {caller.role}"  # the caller comes typed


async def test_rpc_checks_the_role_before_opening_a_transaction(world):
    sessions = _Sessions()
    servicer = _Servicer(sessions, None, None)  # type: ignore[arg-type]
    token = identity_var.set(world.viewer)
    try:
        with pytest.raises(Forbidden, match="Requires editor role or higher"):
            await servicer.Change(object(), None)
    finally:
        identity_var.reset(token)
    assert sessions.opened == 0
    assert _Servicer.Change.__name__ == "Change"  # the generated stub's method name is kept


async def test_rpc_runs_the_body_in_one_unit_of_work(world, sessions):
    servicer = _Servicer(sessions, None, None)  # type: ignore[arg-type]
    token = identity_var.set(world.editor)
    try:
        assert await servicer.Change(object(), None) == f"changed in {world.org_a!r} as editor"
    finally:
        identity_var.reset(token)
