"""Which model the agents use (INTERLOPER_AGENT_MODEL): Gemini through google-genai by default,
the scripted model for tests, `demo` (the scripted model with the script shipped beside this
module: one canned answer, offline), or any other name ADK's model registry resolves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..settings import DEMO_MODEL, SCRIPTED_PREFIX, Settings
from .agents import ModelFactory

DEMO_SCRIPT = Path(__file__).with_name("demo_script.json")


def model_factory(settings: Settings) -> ModelFactory:
    name = settings.agent.model.strip()
    if name.startswith(SCRIPTED_PREFIX) or name == DEMO_MODEL:
        from .scripted import ScriptedLlm

        path = str(DEMO_SCRIPT) if name == DEMO_MODEL else name[len(SCRIPTED_PREFIX) :].strip()

        def scripted(agent_name: str) -> Any:
            return ScriptedLlm(model="scripted", script_path=path, agent_name=agent_name)

        return scripted
    if name.startswith("gemini"):
        from google.adk.models import Gemini
        from google.genai import types

        # One client for every agent; transient errors (429, 5xx) are retried by google-genai.
        shared = Gemini(model=name, retry_options=types.HttpRetryOptions(attempts=3))
        return lambda _: shared
    return lambda _: name
