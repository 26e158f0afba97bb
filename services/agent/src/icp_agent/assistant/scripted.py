"""A scripted model for tests and demos: an ADK BaseLlm that replays a JSON script of texts and
function calls, so the real runner, real tools and real gRPC calls run without a real model.

Selected with INTERLOPER_AGENT_MODEL=scripted:<path>. The file is re-read on every model call
(a test may rewrite it while the service runs):

    {"conversations": [
      {"message": "run the nightly job",            # chosen when the user's message contains this ("*": any)
       "steps": [                                   # one step per model call of the chat turn, in order
         {"agent": "InterloperAgent", "call": "transfer_to_agent", "args": {"agent_name": "ActionAgent"}},
         {"agent": "ActionAgent", "call": "trigger_run", "args": {"job_id": "..."}},
         {"agent": "ActionAgent", "text": "Queued.", "delay": 0.5},
         {"error": "the model failed"}              # makes the model call raise
       ]}
    ]}

`agent` (optional) asserts which agent makes the call; `calls` ([{"name", "args"}]) gives several
function calls in one step. The step counter belongs to the chat turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types
from pydantic import BaseModel, Field, ValidationError

from .errors import AssistantError
from .turn import current_turn


class ScriptError(AssistantError):
    """The script could not answer this call (or says to fail)."""


class Call(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    agent: str | None = None
    text: str | None = None
    call: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    calls: list[Call] = Field(default_factory=list)
    delay: float = 0.0
    error: str | None = None

    def parts(self) -> list[types.Part]:
        parts: list[types.Part] = []
        if self.text is not None:
            parts.append(types.Part.from_text(text=self.text))
        calls = ([Call(name=self.call, args=self.args)] if self.call else []) + self.calls
        parts.extend(types.Part.from_function_call(name=c.name, args=c.args) for c in calls)
        return parts


class Conversation(BaseModel):
    message: str
    steps: list[Step]


class Script(BaseModel):
    conversations: list[Conversation] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Script:
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            raise ScriptError(f"cannot read the model script {path}: {exc}") from None

    def conversation_for(self, message: str) -> Conversation:
        for conversation in self.conversations:
            if conversation.message == "*" or conversation.message in message:
                return conversation
        raise ScriptError(f"the model script has no conversation for the message {message!r}")


class ScriptedLlm(BaseLlm):
    """One instance per agent (it knows which agent it speaks for)."""

    script_path: str
    agent_name: str = ""

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        turn = current_turn()
        index = turn.model_calls
        turn.model_calls += 1
        conversation = Script.load(Path(self.script_path)).conversation_for(turn.message)
        if index >= len(conversation.steps):
            raise ScriptError(f"the model script for {conversation.message!r} has no step {index + 1}")
        step = conversation.steps[index]
        if step.agent and step.agent != self.agent_name:
            raise ScriptError(f"step {index + 1} of the model script is for {step.agent}, not {self.agent_name}")
        if step.delay > 0:
            await asyncio.sleep(step.delay)
        if step.error is not None:
            raise ScriptError(step.error)
        yield LlmResponse(
            content=types.Content(role="model", parts=step.parts()),
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=0, candidates_token_count=0, total_token_count=0
            ),
        )
