"""Route 67: the SSE chat, with the real ADK runner, the scripted model, the real tools and real
gRPC calls to the real pipelines service on behalf of the chatting user."""

from __future__ import annotations

import asyncio
import json

from icp_agent.assistant.turn import ChatTurn, chat_turn
from icp_agent.sessions import chat as chat_service
from icp_agent.sessions import service as session_service
from icp_common.caller import Role, member_of

from .conftest import asgi_client, chat, create_pipeline, new_session, parse_frames, parts, runs_of


def transfer(source: str, target: str) -> dict:
    return {"agent": source, "call": "transfer_to_agent", "args": {"agent_name": target}}


async def test_list_sources_then_trigger_a_run(agent_as, pipelines_as, world, script):
    pipeline = await create_pipeline(pipelines_as(world.editor))
    job_id = pipeline.job["id"]
    script.conversation(
        "list my sources and run the nightly job",
        transfer("InterloperAgent", "CatalogAgent"),
        {"agent": "CatalogAgent", "call": "list_sources"},
        transfer("CatalogAgent", "ActionAgent"),
        {"agent": "ActionAgent", "call": "trigger_run", "args": {"job_id": job_id}},
        {"agent": "ActionAgent", "text": "Queued the nightly job."},
    )
    alice = agent_as(world.editor)
    session = await new_session(alice)
    r, frames = await chat(alice, session["id"], "please list my sources and run the nightly job")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"

    # one data frame per ADK event, then the done frame
    assert [f.event for f in frames] == [None] * (len(frames) - 1) + ["done"]
    assert frames[-1].data == {}
    events = [f.data for f in frames[:-1]]
    assert all({"id", "author", "invocationId", "content", "timestamp"} <= set(e) for e in events)
    assert "user" not in [e["author"] for e in events]
    calls = parts(frames, "functionCall")
    assert [c["name"] for c in calls] == ["transfer_to_agent", "list_sources", "transfer_to_agent", "trigger_run"]
    responses = {p["name"]: p["response"] for p in parts(frames, "functionResponse")}

    listed = responses["list_sources"]
    assert listed["status"] == "success"
    demo = next(s for s in listed["sources"] if s["key"] == "demo_source")
    assert demo["configured"] is True and [i["id"] for i in demo["instances"]] == [pipeline.source["id"]]
    ads = next(s for s in listed["sources"] if s["key"] == "demo_ads")
    assert ads["configured"] is False and ads["catalog_asset_count"] == 1

    triggered = responses["trigger_run"]
    assert triggered["status"] == "success" and triggered["message"] == "Run queued successfully"
    assert triggered["run"]["job_id"] == job_id and triggered["run"]["status"] == "queued"
    assert parts(frames, "text") == ["Queued the nightly job."]

    # the run really exists in the pipelines service, in this organisation only
    runs = await runs_of(pipelines_as(world.editor))
    assert [(r["id"], r["job_id"], r["status"]) for r in runs] == [(triggered["run_id"], job_id, "queued")]
    assert await runs_of(pipelines_as(world.other)) == []

    # the turn is stored in the session, the user's message first
    stored = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()["events"]
    assert stored[0]["author"] == "user"
    assert [e["id"] for e in stored[1:]] == [e["id"] for e in events]
    listed_sessions = (await alice.get("/api/agent/sessions")).json()
    assert listed_sessions[0]["event_count"] == len(events) + 1


async def test_another_organisations_job_is_not_found(agent_as, pipelines_as, world, script):
    theirs = await create_pipeline(pipelines_as(world.editor))
    job_id = theirs.job["id"]
    script.conversation(
        "run job",
        transfer("InterloperAgent", "ActionAgent"),
        {"agent": "ActionAgent", "call": "trigger_run", "args": {"job_id": job_id}},
        transfer("ActionAgent", "OperationsAgent"),
        {"agent": "OperationsAgent", "call": "get_job_health", "args": {"job_id": job_id}},
        {"agent": "OperationsAgent", "text": "That job does not exist here."},
    )
    bob = agent_as(world.other)
    session = await new_session(bob)
    r, frames = await chat(bob, session["id"], f"run job {job_id}")
    assert r.status_code == 200 and frames[-1].event == "done"
    responses = [p["response"] for p in parts(frames, "functionResponse") if p["name"] != "transfer_to_agent"]
    assert responses == [
        {"status": "error", "error": f"Job {job_id} not found", "code": "not_found"},
        {"status": "error", "error": f"Job {job_id} not found", "code": "not_found"},
    ]
    assert await runs_of(pipelines_as(world.editor)) == []


async def test_a_viewer_cannot_trigger(replica, agent_service, pipelines_as, world, script):
    """The chat route needs editor (spec 2.1); should a viewer's turn reach a tool anyway (a role
    lowered while the session lives), pipelines refuses the action and the tool says so."""
    pipeline = await create_pipeline(pipelines_as(world.editor))
    script.conversation(
        "run it",
        transfer("InterloperAgent", "ActionAgent"),
        {"agent": "ActionAgent", "call": "trigger_run", "args": {"job_id": pipeline.job["id"]}},
        {"agent": "ActionAgent", "call": "toggle_job", "args": {"job_id": pipeline.job["id"], "enabled": False}},
        {"agent": "ActionAgent", "text": "You are not allowed to do that."},
    )
    async with replica(f"scripted:{script.path}") as app:
        assistant = app.state.assistant
        viewer = member_of(world.viewer, Role.VIEWER)  # past the route's editor check: the tools check again
        session = await session_service.create(assistant, viewer)
        frames = parse_frames(
            "".join([f async for f in await chat_service.start(assistant, viewer, session.id, "run it")])
        )
    assert frames[-1].event == "done"
    denied = {"status": "error", "error": "Requires editor role or higher", "code": "permission_denied"}
    responses = [p["response"] for p in parts(frames, "functionResponse") if p["name"] != "transfer_to_agent"]
    assert responses == [denied, denied]
    assert await runs_of(pipelines_as(world.editor)) == []
    r = await pipelines_as(world.editor).get(f"/api/jobs/{pipeline.job['id']}")
    assert r.json()["enabled"] is True


async def test_unknown_session_is_404_before_streaming(agent_as, world, script):
    alice = agent_as(world.editor)
    r = await alice.post("/api/agent/sessions/nope/chat", json={"message": "hi"})
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    assert r.headers["content-type"] == "application/json"
    session = await new_session(alice)
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "message"]
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": ""})
    assert r.status_code == 422


async def test_error_after_streaming_started(agent_as, world, script):
    script.conversation(
        "fail please",
        transfer("InterloperAgent", "OperationsAgent"),
        {"agent": "OperationsAgent", "error": "the model is unavailable"},
    )
    alice = agent_as(world.editor)
    session = await new_session(alice)
    r, frames = await chat(alice, session["id"], "fail please")
    assert r.status_code == 200
    # the events so far, ADK's own error event, then our error frame; no done frame after an error
    assert [f.event for f in frames] == [None, None, None, "error"]
    assert frames[2].data["errorMessage"] == "the model is unavailable"
    assert frames[-1].data == {"detail": "the model is unavailable"}
    # a script that does not match: the same from the first model call
    r, frames = await chat(alice, session["id"], "something unscripted")
    assert [f.event for f in frames] == [None, "error"]
    assert "no conversation" in frames[-1].data["detail"]
    # the session still works afterwards
    script.conversation("hello", {"text": "Hi!"})
    r, frames = await chat(alice, session["id"], "hello")
    assert parts(frames, "text") == ["Hi!"] and frames[-1].event == "done"


async def test_client_disconnect_cancels_the_turn(agent_as, pipelines_as, world, script):
    pipeline = await create_pipeline(pipelines_as(world.editor))
    script.conversation(
        "slow run",
        transfer("InterloperAgent", "ActionAgent"),
        {"agent": "ActionAgent", "delay": 2.0, "call": "trigger_run", "args": {"job_id": pipeline.job["id"]}},
        {"agent": "ActionAgent", "text": "Queued."},
    )
    alice = agent_as(world.editor)
    session = await new_session(alice)
    received: list[str] = []
    async with alice.stream("POST", f"/api/agent/sessions/{session['id']}/chat", json={"message": "slow run"}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 2:  # the transfer's call and response: the model is now "thinking"
                break
    # the client is gone while the model works; the turn is cancelled, the run never triggered
    await asyncio.sleep(3.5)
    assert await runs_of(pipelines_as(world.editor)) == []
    events = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()["events"]
    names = [p.get("functionCall", {}).get("name") for e in events for p in e.get("content", {}).get("parts", [])]
    assert "trigger_run" not in names
    # the service is fine and the session usable
    script.conversation("hello again", {"text": "Hello."})
    r, frames = await chat(alice, session["id"], "hello again")
    assert parts(frames, "text") == ["Hello."]


async def test_without_a_model_the_chat_says_so_in_the_stream(replica, agent_as, world):
    """No model: the stream carries one assistant message the web UI shows, then the error frame;
    a JSON-only client gets a 503; a new chat replaces the empty ones instead of piling up."""
    alice_elsewhere = agent_as(world.editor)
    created_by_other_replica = await new_session(alice_elsewhere)
    bob = agent_as(world.other)
    bobs = await new_session(bob)
    async with replica("") as app, asgi_client(app, world.editor) as alice:
        assert app.state.assistant.runner is None
        r = await alice.get("/api/agent/sessions")
        assert [s["id"] for s in r.json()] == [created_by_other_replica["id"]]  # one database, all replicas
        session = await new_session(alice)
        assert [s["id"] for s in (await alice.get("/api/agent/sessions")).json()] == [session["id"]]

        r, frames = await chat(alice, session["id"], "hi")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert [f.event for f in frames] == [None, "error"]
        reply = frames[0].data
        assert reply["author"] == "InterloperAgent" and reply["content"]["role"] == "model"
        assert "no model configured" in reply["content"]["parts"][0]["text"]
        assert "GOOGLE_API_KEY" in reply["content"]["parts"][0]["text"]
        assert frames[1].data == {"detail": "Assistant model not configured"}

        r = await alice.post(
            f"/api/agent/sessions/{session['id']}/chat", json={"message": "hi"}, headers={"Accept": "application/json"}
        )
        assert (r.status_code, r.json()) == (503, {"detail": "Assistant model not configured"})
        r = await alice.post("/api/agent/sessions/nope/chat", json={"message": "hi"})
        assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})

        # nothing was stored, and trying again (new chat, message) leaves one empty chat in the list
        assert (await alice.get(f"/api/agent/sessions/{session['id']}")).json().get("events", []) == []
        again = await new_session(alice)
        assert [s["id"] for s in (await alice.get("/api/agent/sessions")).json()] == [again["id"]]
        r = await alice.get("/readyz")
        assert r.status_code == 200
        status = (await alice.get("/assistant")).json()  # what the stack's start-up table shows
        assert status == {"model": "", "chat": False, "problem": "INTERLOPER_AGENT_MODEL is empty"}
    # with a model (the other replica), a new chat is one more session; nobody else's was touched
    await new_session(alice_elsewhere)
    assert len((await alice_elsewhere.get("/api/agent/sessions")).json()) == 2
    assert [s["id"] for s in (await bob.get("/api/agent/sessions")).json()] == [bobs["id"]]


async def test_demo_model_answers_offline(replica, world):
    async with replica("demo") as app, asgi_client(app, world.editor) as alice:
        assert app.state.assistant.runner is not None
        session = await new_session(alice)
        r, frames = await chat(alice, session["id"], "what sources do I have?")
        assert r.status_code == 200 and frames[-1].event == "done"
        [text] = parts(frames, "text")
        assert "offline demo model" in text
        assert (await alice.get("/assistant")).json() == {"model": "demo", "chat": True, "problem": None}


def test_openapi_document_lists_the_chat_route():
    """The event-stream response class once made /openapi.json fail (UnboundLocalError)."""
    from icp_agent.app import create_app
    from icp_agent.settings import Settings

    from .conftest import SECRET

    paths = create_app(Settings(internal_secret=SECRET)).openapi()["paths"]
    chat_route = paths["/api/agent/sessions/{session_id}/chat"]["post"]
    assert "text/event-stream" in chat_route["responses"]["200"]["content"]
    assert {"/api/agent/sessions", "/api/agent/sessions/{session_id}"} <= set(paths)


def test_model_configuration(monkeypatch):
    from icp_agent.settings import AgentSettings, GoogleSettings, Settings

    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)

    def problem(model: str, **google: str) -> str | None:
        for key, value in google.items():
            monkeypatch.setenv(key, value)
        settings = Settings(internal_secret="x", agent=AgentSettings(model=model), google=GoogleSettings())
        for key in google:
            monkeypatch.delenv(key)
        return settings.model_problem()

    assert problem("gemini-2.5-flash") is not None
    assert problem("gemini-2.5-flash", GOOGLE_API_KEY="k") is None
    assert problem("gemini-2.5-flash", GEMINI_API_KEY="k") is None
    assert problem("gemini-2.5-flash", GOOGLE_GENAI_USE_VERTEXAI="true") is None
    assert problem("") is not None
    assert problem("scripted:") is not None
    assert problem("scripted:/tmp/x.json") is None
    assert problem("demo") is None
    monkeypatch.setenv("INTERLOPER_AGENT_MODEL", "scripted:/s.json")
    assert Settings(internal_secret="x").agent.model == "scripted:/s.json"


def test_event_frames():
    assert chat_service.frame('{"a":1}') == 'data: {"a":1}\n\n'
    assert chat_service.frame(json.dumps({"detail": "x"}), "error") == 'event: error\ndata: {"detail": "x"}\n\n'


async def test_turn_context_is_required_for_tools():
    from icp_agent.assistant.turn import NoChatTurn, current_turn

    try:
        current_turn()
    except NoChatTurn:
        pass
    else:
        raise AssertionError("expected NoChatTurn")
    with chat_turn(ChatTurn(identity=None, session_id="s", message="m")) as turn:  # type: ignore[arg-type]
        assert current_turn() is turn


async def test_concurrent_turns_in_one_session(agent_as, world, script):
    """Two chats at once in the same session: each stream ends with `done` or a clean error frame."""
    script.set(
        [
            {"message": "first", "steps": [{"text": "one", "delay": 0.5}, {"text": "unused"}]},
            {"message": "second", "steps": [{"text": "two", "delay": 0.2}]},
        ]
    )
    alice = agent_as(world.editor)
    session = await new_session(alice)
    results = await asyncio.gather(chat(alice, session["id"], "first"), chat(alice, session["id"], "second"))
    for r, frames in results:
        assert r.status_code == 200 and frames[-1].event in ("done", "error")
    assert any(frames[-1].event == "done" for _, frames in results)
    r = await alice.get(f"/api/agent/sessions/{session['id']}")
    assert r.status_code == 200
