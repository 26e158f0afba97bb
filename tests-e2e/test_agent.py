"""The assistant end to end, through Traefik and the gateway: sessions scoped to (user,
organisation), the SSE chat relayed as it is produced, tools acting on the real pipelines
service with the user's permissions, sessions surviving an agent restart, client disconnects.

The stack's agent runs the scripted model (an ADK BaseLlm replaying a JSON script), selected
here through INTERLOPER_AGENT_MODEL before any stack starts (pytest imports every test module
before the session fixtures run; the launcher passes its environment to the services)."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

_SCRIPT_DIR = Path(tempfile.mkdtemp(prefix="icp-agent-e2e-"))
atexit.register(shutil.rmtree, _SCRIPT_DIR, True)
SCRIPT = _SCRIPT_DIR / "script.json"
SCRIPT.write_text('{"conversations": []}', encoding="utf-8")
os.environ["INTERLOPER_AGENT_MODEL"] = f"scripted:{SCRIPT}"
os.environ.setdefault(
    "INTERLOPER_CATALOG",
    json.dumps(CATALOG_PATHS),
)


def script(message: str, *steps: dict[str, Any]) -> None:
    tmp = SCRIPT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"conversations": [{"message": message, "steps": list(steps)}]}), encoding="utf-8")
    tmp.replace(SCRIPT)


def transfer(source: str, target: str) -> dict[str, Any]:
    return {"agent": source, "call": "transfer_to_agent", "args": {"agent_name": target}}


@pytest.fixture
async def sign_in(base_url: str) -> AsyncIterator[Callable[..., Any]]:
    """`await sign_in(email, org_name)`: a client (own cookie jar) signed in through dev login,
    with a new organisation of which it is admin (and which is active)."""
    clients: list[httpx.AsyncClient] = []

    async def do(name: str, org: str | None = None) -> tuple[httpx.AsyncClient, dict[str, Any]]:
        client = httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False)
        clients.append(client)
        r = await client.get("/api/auth/dev-login", params={"email": f"{name}-{uuid.uuid4().hex[:8]}@e2e.example"})
        assert r.status_code == 302, r.text
        r = await client.post("/api/organisations", json={"name": org or f"{name} org"})
        assert r.status_code == 201, r.text
        return client, r.json()

    yield do
    for client in clients:
        await client.aclose()


async def create_job(client: httpx.AsyncClient) -> dict[str, Any]:
    asset = (await client.post("/api/assets/", json={"key": "demo_ping"})).json()
    r = await client.post("/api/jobs/", json={"name": "Nightly", "cron": "0 3 * * *", "asset_ids": [asset["id"]]})
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def data_of(line: str) -> Any:
    return json.loads(line[len("data: ") :])


async def test_chat_streams_tool_calls_and_the_run_is_created(sign_in) -> None:
    alice, _ = await sign_in("alice")
    await alice.post("/api/sources/", json={"key": "demo_source", "name": "Demo"})
    job = await create_job(alice)
    script(
        "list sources and run",
        transfer("InterloperAgent", "CatalogAgent"),
        {"agent": "CatalogAgent", "call": "list_sources"},
        transfer("CatalogAgent", "ActionAgent"),
        {"agent": "ActionAgent", "call": "trigger_run", "args": {"job_id": job["id"]}},
        {"agent": "ActionAgent", "text": "Run queued.", "delay": 1.5},
    )
    r = await alice.post("/api/agent/sessions")
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["app_name"] == "interloper_agent" and session["event_count"] == 0

    arrivals: list[tuple[float, str, Any]] = []  # (time, "data"|"event", payload)
    started = time.monotonic()
    async with alice.stream(
        "POST", f"/api/agent/sessions/{session['id']}/chat", json={"message": "please list sources and run"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, "data", data_of(line)))
            elif line.startswith("event: "):
                arrivals.append((time.monotonic() - started, "event", line[len("event: ") :]))
    kinds = [payload for _, kind, payload in arrivals if kind == "event"]
    assert kinds == ["done"]
    events = [payload for _, kind, payload in arrivals if kind == "data" and payload]
    calls = [p["functionCall"] for e in events for p in e["content"]["parts"] if "functionCall" in p]
    assert [c["name"] for c in calls] == ["transfer_to_agent", "list_sources", "transfer_to_agent", "trigger_run"]
    responses = {
        p["functionResponse"]["name"]: p["functionResponse"]["response"]
        for e in events
        for p in e["content"]["parts"]
        if "functionResponse" in p
    }
    assert any(s["key"] == "demo_source" and s["configured"] for s in responses["list_sources"]["sources"])
    run_id = responses["trigger_run"]["run_id"]
    # frames are relayed as they are produced: the tool events came well before the slow last answer
    first_tool_event = next(t for t, kind, payload in arrivals if kind == "data")
    last_event = max(t for t, kind, _ in arrivals if kind == "data")
    assert last_event - first_tool_event > 1.0

    runs = (await alice.get("/api/runs/")).json()
    assert run_id in [r["id"] for r in runs]
    assert next(r for r in runs if r["id"] == run_id)["job_id"] == job["id"]
    stored = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()
    assert stored["events"][0]["author"] == "user"
    assert stored["events"][-1]["content"]["parts"][0]["text"] == "Run queued."


async def test_sessions_are_per_user_and_organisation(sign_in) -> None:
    alice, first_org = await sign_in("alice")
    bob, _ = await sign_in("bob")
    mine = (await alice.post("/api/agent/sessions")).json()
    assert mine["state"] == {"org_id": first_org["id"]}
    r = await bob.get(f"/api/agent/sessions/{mine['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    r = await bob.post(f"/api/agent/sessions/{mine['id']}/chat", json={"message": "hi"})
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    assert (await bob.get("/api/agent/sessions")).json() == []

    # a second organisation becomes active: the first one's sessions are out of sight
    r = await alice.post("/api/organisations", json={"name": "Second"})
    assert r.status_code == 201
    assert (await alice.get("/api/agent/sessions")).json() == []
    assert (await alice.get(f"/api/agent/sessions/{mine['id']}")).status_code == 404
    r = await alice.post("/api/auth/switch-org", json={"organisation_id": first_org["id"]})
    assert r.status_code == 200
    assert [s["id"] for s in (await alice.get("/api/agent/sessions")).json()] == [mine["id"]]

    r = await httpx.AsyncClient(base_url=str(alice.base_url)).get("/api/agent/sessions")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})


async def test_session_survives_an_agent_restart(sign_in, stack: StackHandle) -> None:
    alice, _ = await sign_in("alice")
    session = (await alice.post("/api/agent/sessions")).json()
    script("remember", {"agent": "InterloperAgent", "text": "I will."})
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "remember this"})
    assert r.status_code == 200 and "event: done" in r.text
    before = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()

    pid = stack.kill_component("agent")
    await asyncio.to_thread(stack.wait_component_ready, "agent", not_pid=pid)

    after = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()
    assert after == before and len(after["events"]) == 2
    assert [s["event_count"] for s in (await alice.get("/api/agent/sessions")).json()] == [2]


async def test_errors_and_disconnects(sign_in) -> None:
    alice, _ = await sign_in("alice")
    job = await create_job(alice)
    r = await alice.post(f"/api/agent/sessions/{uuid.uuid4()}/chat", json={"message": "hi"})
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    session = (await alice.post("/api/agent/sessions")).json()

    script("break", transfer("InterloperAgent", "OperationsAgent"), {"error": "model exploded"})
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "break"})
    assert r.status_code == 200
    assert r.text.endswith('event: error\ndata: {"detail": "model exploded"}\n\n')
    assert "event: done" not in r.text

    # the client goes away while the model "thinks": the turn is cancelled, nothing is triggered
    script(
        "slow",
        transfer("InterloperAgent", "ActionAgent"),
        {"agent": "ActionAgent", "delay": 2.0, "call": "trigger_run", "args": {"job_id": job["id"]}},
        {"agent": "ActionAgent", "text": "done"},
    )
    seen = 0
    async with alice.stream("POST", f"/api/agent/sessions/{session['id']}/chat", json={"message": "slow"}) as r:
        async for line in r.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 2:
                break
    await asyncio.sleep(3.5)
    assert (await alice.get("/api/runs/")).json() == []
    events = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()["events"]
    assert not any(
        p.get("functionCall", {}).get("name") == "trigger_run"
        for e in events
        for p in e.get("content", {}).get("parts", [])
    )
