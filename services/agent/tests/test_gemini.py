"""The default model path (ADK's Gemini over google-genai), against a stand-in for the Gemini
API on localhost (GOOGLE_GEMINI_BASE_URL): the requests the agents send (system instruction,
tool declarations, API key) and the answers flowing back through the real runner and tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from icp_agent.sessions import chat as chat_service
from icp_agent.sessions import service as session_service
from icp_common.caller import Role, member_of
from icp_stack.ports import free_port

from .conftest import create_pipeline, parse_frames, parts


def answer(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
    }


class FakeGemini:
    """Answers generateContent by agent (read from the system instruction ADK writes)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.fail_with: int | None = None
        self.url = ""
        app = FastAPI()

        @app.post("/{version}/models/{model_action}")
        async def generate(version: str, model_action: str, request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append((model_action, dict(request.headers), body))
            if self.fail_with is not None:
                error = {"code": self.fail_with, "message": "API key not valid", "status": "INVALID_ARGUMENT"}
                return JSONResponse({"error": error}, status_code=self.fail_with)
            system = " ".join(p.get("text", "") for p in body.get("systemInstruction", {}).get("parts", []))
            last = body["contents"][-1]["parts"][0]
            if '"InterloperAgent"' in system:
                return JSONResponse(
                    answer({"functionCall": {"name": "transfer_to_agent", "args": {"agent_name": "OperationsAgent"}}})
                )
            if "functionResponse" in last and last["functionResponse"]["name"] == "list_jobs":
                jobs = last["functionResponse"]["response"]["jobs"]
                return JSONResponse(answer({"text": f"You have {len(jobs)} job(s): {jobs[0]['name']}."}))
            return JSONResponse(answer({"functionCall": {"name": "list_jobs", "args": {}}}))

        self.app = app


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield fake
    server.should_exit = True
    await task


async def turn(app: Any, identity: Any, message: str) -> list[Any]:
    assistant = app.state.assistant
    caller = member_of(identity, Role.VIEWER)
    session = await session_service.create(assistant, caller)
    frames = await chat_service.start(assistant, caller, session.id, message)
    return parse_frames("".join([f async for f in frames]))


async def test_gemini_is_the_default_model(replica, fake_gemini, pipelines_as, world, monkeypatch):
    pipeline = await create_pipeline(pipelines_as(world.editor))
    async with replica("gemini-2.5-flash") as app:
        assert app.state.assistant.runner is None  # no GOOGLE_API_KEY: the chat is disabled (503)
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini.url)
    async with replica("gemini-2.5-flash") as app:
        frames = await turn(app, world.viewer, "what jobs do I have?")

    assert frames[-1].event == "done"
    assert [c["name"] for c in parts(frames, "functionCall")] == ["transfer_to_agent", "list_jobs"]
    listed = next(p["response"] for p in parts(frames, "functionResponse") if p["name"] == "list_jobs")
    assert [j["id"] for j in listed["jobs"]] == [pipeline.job["id"]]
    assert parts(frames, "text") == ["You have 1 job(s): Nightly."]

    actions = [a for a, _, _ in fake_gemini.requests]
    assert actions == ["gemini-2.5-flash:generateContent"] * 3
    _, headers, root_request = fake_gemini.requests[0]
    assert headers["x-goog-api-key"] == "test-key"
    declared = [f["name"] for t in root_request["tools"] for f in t["functionDeclarations"]]
    assert declared == ["transfer_to_agent"]
    _, _, ops_request = fake_gemini.requests[1]
    declared = {f["name"]: f for t in ops_request["tools"] for f in t["functionDeclarations"]}
    assert set(declared) >= {
        "list_recent_runs",
        "get_run_detail",
        "list_failures",
        "get_job_health",
        "list_jobs",
        "list_backfills",
        "transfer_to_agent",
    }
    health = declared["get_job_health"]
    schema = next(health[k] for k in ("parameters_json_schema", "parametersJsonSchema", "parameters") if k in health)
    assert schema["required"] == ["job_id"] and schema["properties"]["job_id"]["type"] == "string"
    assert health["description"].startswith("Get a job with health statistics")


async def test_gemini_errors_end_the_stream_with_an_error_frame(replica, fake_gemini, world, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "bad-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini.url)
    fake_gemini.fail_with = 400
    async with replica("gemini-2.5-flash") as app:
        frames = await turn(app, world.editor, "hello")
    assert frames[-1].event == "error"
    assert frames[-1].data["detail"].startswith("The model failed: 400 INVALID_ARGUMENT")
    assert "API key not valid" in frames[-1].data["detail"]
