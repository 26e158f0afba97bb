"""Routes 63-67: /api/agent/sessions*."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from icp_common.caller import EditorCaller, ViewerCaller

from ..assistant.runtime import Assistant
from . import chat, service
from .schemas import AgentSessionRead, ChatRequest, DeletedRead

router = APIRouter(prefix="/api/agent", tags=["agent"])


async def get_assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.assistant
    return assistant


AssistantDep = Annotated[Assistant, Depends(get_assistant)]


@router.post("/sessions", response_model=AgentSessionRead)
async def create_session(caller: EditorCaller, assistant: AssistantDep) -> AgentSessionRead:
    return await service.create(assistant, caller)


@router.get("/sessions", response_model=list[AgentSessionRead])
async def list_sessions(caller: ViewerCaller, assistant: AssistantDep) -> list[AgentSessionRead]:
    return await service.list_sessions(assistant, caller)


@router.get("/sessions/{session_id}", response_model=None)
async def get_session(session_id: str, caller: ViewerCaller, assistant: AssistantDep) -> JSONResponse:
    session = await service.get(assistant, caller, session_id)
    return JSONResponse(service.dump(session))


@router.delete("/sessions/{session_id}", response_model=DeletedRead)
async def delete_session(session_id: str, caller: EditorCaller, assistant: AssistantDep) -> DeletedRead:
    await service.delete(assistant, caller, session_id)
    return DeletedRead()


@router.post(
    "/sessions/{session_id}/chat",
    response_class=chat.EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "One `data:` frame per ADK event"},
        503: {"description": "No model configured and the client accepts only JSON (`Accept: application/json`)"},
    },
)
async def chat_in_session(
    session_id: str, body: ChatRequest, caller: EditorCaller, assistant: AssistantDep, request: Request
) -> chat.EventStreamResponse:
    event_stream = chat.wants_event_stream(request.headers.get("accept"))
    frames: Any = await chat.start(assistant, caller, session_id, body.message, event_stream=event_stream)
    return chat.EventStreamResponse(frames)
