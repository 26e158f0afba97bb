"""`/api/auth/me` answers from the verified assertion (the gateway's Authenticate already read the
session, user and membership) plus at most one statement, in no transaction of its own (issue 17:
`me` paid identity twice)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common.identity import IDENTITY_HEADER
from icp_identity.sessions import service as sessions_service

from ..conftest import BASE_URL, SIGNER


@contextmanager
def commits(engine: AsyncEngine) -> Iterator[list[str]]:
    """Transactions committed through the engine meanwhile."""
    done: list[str] = []

    def on_commit(conn: Any) -> None:
        done.append("commit")

    event.listen(engine.sync_engine, "commit", on_commit)
    try:
        yield done
    finally:
        event.remove(engine.sync_engine, "commit", on_commit)


async def me_as(app, db, engine, count_queries, token: str) -> tuple[httpx.Response, list[str], list[str]]:
    """`/api/auth/me` with the assertion the gateway would forward (its Authenticate done first,
    outside the count), and the statements and commits of the route alone."""
    async with db() as s:
        identity = await sessions_service.authenticate(s, token)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        with count_queries() as counter, commits(engine) as done:
            response = await client.get("/api/auth/me", headers={IDENTITY_HEADER: SIGNER.sign(identity)})
    return response, counter.statements, done


async def test_me_is_one_statement_and_no_transaction(app, db, engine, count_queries, world):
    r, statements, done = await me_as(app, db, engine, count_queries, world.owner.token)
    assert r.status_code == 200 and r.json()["organisation"]["name"] == "Org A"
    assert len(statements) == 1 and "FROM organisations" in statements[0]
    assert done == []


async def test_me_without_organisation_sends_no_statement(app, db, engine, count_queries, world):
    r, statements, done = await me_as(app, db, engine, count_queries, world.no_org.token)
    assert r.status_code == 200 and r.json()["organisation"] is None
    assert (statements, done) == ([], [])


async def test_me_of_an_organisation_deleted_meanwhile_shows_none(app, db, world):
    # Authenticate said the organisation exists; it is gone when /me reads it: no organisation,
    # no role (as before), never a 500.
    async with db() as s:
        identity = await sessions_service.authenticate(s, world.owner.token)
        await s.execute(text("DELETE FROM organisations WHERE id = :id"), {"id": world.org_a})
    assert identity.org_exists
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        r = await client.get("/api/auth/me", headers={IDENTITY_HEADER: SIGNER.sign(identity)})
    assert r.status_code == 200
    assert (r.json()["organisation"], r.json()["role"]) == (None, None)
