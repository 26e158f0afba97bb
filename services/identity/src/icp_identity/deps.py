"""FastAPI dependencies of the identity service: the unit of work and the settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from icp_common.caller import AdminCaller, Member, ViewerCaller
from icp_common.db import unit_of_work
from icp_common.identity import Identity
from icp_common.web import get_identity

from .audit import recorder
from .settings import Settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent (scope="function")."""
    sessions = request.app.state.resources.sessions
    async with unit_of_work(sessions) as session:
        yield session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_reader(request: Request) -> AsyncEngine:
    """The engine in autocommit mode, for single-statement reads: no BEGIN/COMMIT round trips."""
    engine: AsyncEngine = request.app.state.resources.engine
    state = request.app.state
    if getattr(state, "reader_of", None) is not engine:  # made once per engine
        state.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        state.reader_of = engine
    reader: AsyncEngine = state.reader
    return reader


SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
ReaderDep = Annotated[AsyncEngine, Depends(get_reader)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# What a session may do and an API token may not (a leaked token must not mint more access:
# tokens, members, invitations): the role check, then 403 for a token caller (before the body).
async def _session_viewer(caller: ViewerCaller) -> Member:
    caller.refuse_token()
    return caller


async def _session_admin(caller: AdminCaller) -> Member:
    caller.refuse_token()
    return caller


SessionViewerCaller = Annotated[Member, Depends(_session_viewer)]
SessionAdminCaller = Annotated[Member, Depends(_session_admin)]


class Audit:
    """Records an audit entry of this request in its transaction (identity writes its table
    directly): `await audit("tokens.create", "token", token_id)`; never pass secrets."""

    __slots__ = ("identity", "request", "session")

    def __init__(self, session: AsyncSession, identity: Identity, request: Request) -> None:
        self.session, self.identity, self.request = session, identity, request

    async def __call__(
        self, action: str, target_type: str, target_id: object, *, org_id: uuid.UUID | str | None = None
    ) -> None:
        target = str(target_id) if target_id is not None else None
        await recorder.record(self.session, self.identity, self.request, action, target_type, target, org_id=org_id)


async def get_audit(request: Request, db: SessionDep, identity: Annotated[Identity, Depends(get_identity)]) -> Audit:
    return Audit(db, identity, request)


AuditDep = Annotated[Audit, Depends(get_audit)]
