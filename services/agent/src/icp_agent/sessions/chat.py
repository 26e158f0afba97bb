"""One chat turn streamed as Server-Sent Events.

Everything that can be refused is checked before the first byte (session 404); the stream then
carries one `data: <ADK event JSON>` frame per event (the reference's format, which the web UI
reads), and ends with `event: done` — or with `event: error` + `{"detail": ...}` when the turn
fails after streaming started. A client that goes away cancels the turn.

Without a model, the stream carries one assistant message saying so (the web UI shows it in the
chat; a bare 503 showed nothing) and ends with `event: error` `{"detail": "Assistant model not
configured"}`; a client that asks for JSON only (`Accept: application/json`) gets that as a 503."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from functools import partial
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from icp_common.caller import Member
from icp_common.errors import Unavailable

from ..assistant.errors import AssistantError
from ..assistant.runtime import Assistant
from ..assistant.turn import ChatTurn, chat_turn
from . import service

log = logging.getLogger(__name__)

MODEL_NOT_CONFIGURED = "Assistant model not configured"
NO_MODEL_REPLY = (
    "The assistant has no model configured: set GOOGLE_API_KEY (a Gemini API key from Google AI Studio) "
    "or the Vertex AI variables before starting the stack, or try the offline demo model with "
    'INTERLOPER_AGENT_MODEL=demo — see the README, section "The assistant".'
)
AUTHOR = "InterloperAgent"  # the root agent's name (assistant.agents.ROOT_NAME, which imports ADK)


def frame(data: str, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"


def describe(exc: BaseException) -> str:
    """What the client may read about a failed turn (the details stay in the log)."""
    from google.adk.errors import StaleSessionError
    from google.genai.errors import APIError

    if isinstance(exc, AssistantError):
        return str(exc)
    if isinstance(exc, APIError):
        return f"The model failed: {exc.code} {exc.status or ''} {exc.message or ''}".strip()
    if isinstance(exc, StaleSessionError):
        return "The session changed during this turn (another chat in the same session?); try again"
    return "The assistant failed while answering"


def wants_event_stream(accept: str | None) -> bool:
    """False only for a client that asks for JSON and not for an event stream."""
    if not accept:
        return True
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "text/event-stream" in kinds or "application/json" not in kinds


async def no_model_frames(problem: str | None) -> AsyncIterator[str]:
    """The turn of an assistant without a model: one message for the reader, then the error."""
    log.info("chat refused: no model (%s)", problem)
    event = {
        "id": str(uuid.uuid4()),
        "author": AUTHOR,
        "content": {"role": "model", "parts": [{"text": NO_MODEL_REPLY}]},
        "timestamp": time.time(),
    }
    yield frame(json.dumps(event))
    yield frame(json.dumps({"detail": MODEL_NOT_CONFIGURED}), "error")


async def start(
    assistant: Assistant, caller: Member, session_id: str, message: str, *, event_stream: bool = True
) -> AsyncIterator[str]:
    """Check what can be refused, then return the frames of the turn (not started yet)."""
    await service.get(assistant, caller, session_id, with_events=False)
    runner = assistant.runner
    if runner is None:
        if not event_stream:
            raise Unavailable(MODEL_NOT_CONFIGURED)
        return no_model_frames(assistant.model_problem)

    from google.genai import types

    content = types.Content(role="user", parts=[types.Part.from_text(text=message)])

    async def frames() -> AsyncIterator[str]:
        # The tools forward the verified identity as it was asserted (re-signed for pipelines).
        turn = ChatTurn(identity=caller.identity, session_id=session_id, message=message)
        with chat_turn(turn):
            try:
                events = runner.run_async(user_id=str(caller.user), session_id=session_id, new_message=content)
                async with aclosing(events):
                    async for event in events:
                        yield frame(event.model_dump_json(exclude_none=True, by_alias=True))
            except Exception as exc:
                log.warning("chat turn in session %s failed: %r", session_id, exc, exc_info=exc)
                yield frame(json.dumps({"detail": describe(exc)}), "error")
                return
        yield frame("{}", "done")

    return frames()


class EventStreamResponse(StreamingResponse):
    """text/event-stream, never buffered, and the client's disconnect always cancels the stream
    (Starlette only watches for it on ASGI < 2.4; under uvicorn it would be noticed only at the
    next write, i.e. after the model's next answer)."""

    media_type = "text/event-stream"

    # `status_code` is a named parameter: FastAPI's OpenAPI generator reads the route's default
    # status from this signature (without it, /openapi.json failed with UnboundLocalError).
    def __init__(self, content: AsyncIterator[str], status_code: int = 200, **kwargs: Any) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **kwargs.pop("headers", {})}
        super().__init__(content, status_code=status_code, headers=headers, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def run_then_cancel(func: Any) -> None:
                with suppress(OSError):  # the client went away while we were writing
                    await func()
                group.cancel_scope.cancel()

            group.start_soon(run_then_cancel, partial(self.stream_response, send))
            await run_then_cancel(partial(self.listen_for_disconnect, receive))
