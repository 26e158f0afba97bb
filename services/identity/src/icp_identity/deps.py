"""FastAPI dependencies of the identity service: the unit of work and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from icp_common.caller import AdminCaller, Member, ViewerCaller
from icp_common.db import unit_of_work

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
