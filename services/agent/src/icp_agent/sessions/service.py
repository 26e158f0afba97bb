"""Session use cases over ADK's DatabaseSessionService.

ADK keys a session by (app, user, id); the organisation is the session's state `org_id`, set at
creation from the caller's active organisation. A session is visible only to its user while that
organisation is active: another user's or another organisation's session is "Session not found",
so a chat always acts in the organisation the session belongs to, with the user's current role
there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from icp_common.caller import Member
from icp_common.errors import NotFound

from ..assistant.runtime import APP_NAME, Assistant
from .schemas import AgentSessionRead

if TYPE_CHECKING:
    from google.adk.sessions import Session

ORG_KEY = "org_id"


def session_not_found() -> NotFound:
    return NotFound("Session not found")


def read(session: Session, event_count: int) -> AgentSessionRead:
    return AgentSessionRead(
        id=session.id,
        user_id=session.user_id,
        app_name=session.app_name,
        state=dict(session.state),
        last_update_time=session.last_update_time,
        event_count=event_count,
    )


def _user(caller: Member) -> str:
    return str(caller.user)


def _belongs(session: Session | None, caller: Member) -> bool:
    return session is not None and session.state.get(ORG_KEY) == str(caller.org_id)


async def create(assistant: Assistant, caller: Member) -> AgentSessionRead:
    # Without a model nothing is ever said in a session, and each try in the web UI (new chat,
    # then a message) would leave one more empty chat in "Recent": the new session replaces the
    # caller's empty ones (in this organisation). Handing back an existing one instead would show
    # it twice in the UI, which adds the created session to its list.
    empty = []
    if assistant.runner is None:
        empty = [s.id for s in await list_sessions(assistant, caller) if s.event_count == 0]
    session = await assistant.sessions.create_session(
        app_name=APP_NAME, user_id=_user(caller), state={ORG_KEY: str(caller.org_id)}
    )
    for session_id in empty:
        await assistant.sessions.delete_session(app_name=APP_NAME, user_id=_user(caller), session_id=session_id)
    return read(session, 0)


async def _event_counts(assistant: Assistant, user_id: str) -> dict[str, int]:
    """Events per session of one user, in one query (ADK's list omits events)."""
    async with assistant.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT session_id, count(*) FROM events WHERE app_name = :app AND user_id = :user GROUP BY session_id"
            ),
            {"app": APP_NAME, "user": user_id},
        )
        return {str(session_id): int(count) for session_id, count in rows}


async def list_sessions(assistant: Assistant, caller: Member) -> list[AgentSessionRead]:
    response = await assistant.sessions.list_sessions(app_name=APP_NAME, user_id=_user(caller))
    mine = [s for s in response.sessions if _belongs(s, caller)]
    counts = await _event_counts(assistant, _user(caller)) if mine else {}
    return [read(s, counts.get(s.id, 0)) for s in mine]


async def get(assistant: Assistant, caller: Member, session_id: str, *, with_events: bool = True) -> Session:
    from google.adk.sessions.base_session_service import GetSessionConfig

    if "\x00" in session_id:  # no id has one, and PostgreSQL refuses it in a query
        raise session_not_found()
    config = None if with_events else GetSessionConfig(num_recent_events=0)
    session = await assistant.sessions.get_session(
        app_name=APP_NAME, user_id=_user(caller), session_id=session_id, config=config
    )
    if session is None or not _belongs(session, caller):
        raise session_not_found()
    return session


def dump(session: Session) -> dict[str, Any]:
    """The raw ADK session JSON (camelCase, nulls omitted), as the reference returns it."""
    data: dict[str, Any] = session.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


async def delete(assistant: Assistant, caller: Member, session_id: str) -> None:
    await get(assistant, caller, session_id, with_events=False)
    await assistant.sessions.delete_session(app_name=APP_NAME, user_id=_user(caller), session_id=session_id)
