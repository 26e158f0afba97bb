"""`Idempotency-Key` on creating POSTs: a retried request (its first answer was lost, e.g. the
gateway died mid-flight) gets the first answer again instead of creating a second run.

The key is claimed in the request's own transaction, before the write, with
`INSERT ... ON CONFLICT DO NOTHING`: a concurrent duplicate blocks on the unique (scope, key)
until the first transaction ends, then sees its committed row and replays it (or claims the key
if the first one rolled back). The answer is stored in the same transaction as the write, so
the two commit or roll back together. Only successful answers are stored: a request that failed
(4xx) rolled its claim back and may be retried with the same key. Rows older than `TTL` are
ignored (a new request takes the key over) and swept when a key is claimed.

A key belongs to its caller: the scope is the caller's organisation and user, so another
organisation's (or user's) identical key is its own and never replays someone else's answer.

A route takes `key: IdempotencyKeyDep` (the documented, validated header) and returns
`await <service's IdempotencyKeys>.run(db, key, caller, work)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from .caller import Caller

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TABLE = "idempotency_keys"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255

M = TypeVar("M", bound=BaseModel)


def define_idempotency_keys(metadata: MetaData) -> Table:
    """The table of a service that accepts the header (its metadata and a migration include it)."""
    return Table(
        TABLE,
        metadata,
        Column("scope", Text, nullable=False),  # the organisation (or user) the key belongs to
        Column("key", Text, nullable=False),
        Column("fingerprint", Text, nullable=False),  # SHA-256 of method, path and body
        Column("status_code", Integer, nullable=True),  # NULL while the first request is in flight
        Column("response", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
        PrimaryKeyConstraint("scope", "key"),
    )


def validate_key(key: str | None) -> str | None:
    """An `Idempotency-Key` as sent, validated (422 when malformed), or None without one."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise HTTPException(
            422, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (got {len(key)} characters)"
        )
    return key


HEADER_DESCRIPTION = (
    f"Optional, 1 to {MAX_KEY_LENGTH} printable ASCII characters (e.g. a UUID). A retry with the same"
    " key and the same body within 24 h replays the first answer (header `Idempotent-Replayed: true`)"
    " instead of creating again; the same key with another request is 422. Keys are per caller"
    " (organisation and user)."
)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A creating request and its validated `Idempotency-Key` (None: none sent)."""

    request: Request
    key: str | None

    @property
    def status_code(self) -> int:
        """The route's success status (what a replay answers with)."""
        return getattr(self.request.scope.get("route"), "status_code", None) or 200


async def idempotent_request(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias=HEADER, description=HEADER_DESCRIPTION)] = None,
) -> IdempotentRequest:
    return IdempotentRequest(request, validate_key(idempotency_key))


# The route parameter: documents the header in the route's OpenAPI and validates it.
IdempotencyKeyDep = Annotated[IdempotentRequest, Depends(idempotent_request)]


def caller_scope(caller: Caller, *, per_organisation: bool = True) -> str:
    """Whose key it is: the caller's organisation and user (or the user alone, for a request
    that changes the caller's organisation, like creating one)."""
    user = f"user:{caller.user_id or '-'}"
    return f"org:{caller.org_id or '-'}/{user}" if per_organisation else user


async def fingerprint(request: Request) -> str:
    """SHA-256 of method, path and raw body: the same key with another request is refused."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), await request.body()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class IdempotencyKeys:
    """Claims keys and records answers in one service's `idempotency_keys` table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def claim(self, session: AsyncSession, scope: str, key: str, fingerprint: str) -> JSONResponse | None:
        """Claim `key` for this request (None: go ahead), or the first answer to replay; 422 when
        the key was used for a different request."""
        t = self.table
        expired = t.c.created_at < func.now() - TTL
        # An expired row of this key is taken over; a few others are swept without waiting on
        # rows that concurrent requests hold (an index range, usually empty).
        await session.execute(delete(t).where(t.c.scope == scope, t.c.key == key, expired))
        stale = select(t.c.scope, t.c.key).where(expired).limit(100).with_for_update(skip_locked=True)
        await session.execute(delete(t).where(tuple_(t.c.scope, t.c.key).in_(stale)))
        claimed = await session.execute(
            insert(t)
            .values(scope=scope, key=key, fingerprint=fingerprint)
            .on_conflict_do_nothing(index_elements=[t.c.scope, t.c.key])
            .returning(t.c.key)
        )
        if claimed.first() is not None:
            return None
        row = (
            await session.execute(
                select(t.c.fingerprint, t.c.status_code, t.c.response).where(t.c.scope == scope, t.c.key == key)
            )
        ).one()
        if row.fingerprint != fingerprint:
            raise HTTPException(422, f"{HEADER} {key!r} was already used for a different request")
        return JSONResponse(row.response, status_code=row.status_code, headers={REPLAYED_HEADER: "true"})

    async def record(self, session: AsyncSession, scope: str, key: str, status_code: int, response: Any) -> None:
        await session.execute(
            update(self.table)
            .where(self.table.c.scope == scope, self.table.c.key == key)
            .values(status_code=status_code, response=response)
        )

    async def run(
        self,
        session: AsyncSession,
        idempotent: IdempotentRequest,
        caller: Caller,
        work: Callable[[], Awaitable[M]],
        *,
        per_organisation: bool = True,
    ) -> M | JSONResponse:
        """`await work()` at most once per (caller, key): the route's answer, or the first one's
        replay. Without the header, just `await work()`."""
        key = idempotent.key
        if key is None:
            return await work()
        scope = caller_scope(caller, per_organisation=per_organisation)
        replay = await self.claim(session, scope, key, await fingerprint(idempotent.request))
        if replay is not None:
            return replay
        answer = await work()
        await self.record(session, scope, key, idempotent.status_code, jsonable_encoder(answer))
        return answer
