"""Routes 63-66: assistant sessions in PostgreSQL, scoped to (user, organisation)."""

from __future__ import annotations

import time
import uuid

from .conftest import new_session


async def test_create_list_get_delete(agent_as, world):
    alice = agent_as(world.editor)
    before = time.time()
    session = await new_session(alice)
    assert set(session) == {"id", "user_id", "app_name", "state", "last_update_time", "event_count"}
    assert session["user_id"] == world.editor.user_id
    assert session["app_name"] == "interloper_agent"
    assert session["state"] == {"org_id": world.org}
    assert session["event_count"] == 0
    assert isinstance(session["last_update_time"], float) and session["last_update_time"] >= before - 1
    uuid.UUID(session["id"])

    r = await alice.get("/api/agent/sessions")
    assert r.status_code == 200
    assert r.json() == [session]

    r = await alice.get(f"/api/agent/sessions/{session['id']}")
    assert r.status_code == 200
    raw = r.json()
    assert raw["id"] == session["id"]
    assert raw["appName"] == "interloper_agent"
    assert raw["userId"] == world.editor.user_id
    assert raw["state"] == {"org_id": world.org}
    assert raw["events"] == []
    assert raw["lastUpdateTime"] == session["last_update_time"]

    r = await alice.delete(f"/api/agent/sessions/{session['id']}")
    assert (r.status_code, r.json()) == (200, {"status": "deleted"})
    r = await alice.get(f"/api/agent/sessions/{session['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    r = await alice.delete(f"/api/agent/sessions/{session['id']}")
    assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})
    assert (await alice.get("/api/agent/sessions")).json() == []


async def test_roles(agent_as, world):
    r = await agent_as(None).get("/api/agent/sessions")
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    viewer = agent_as(world.viewer)
    r = await viewer.post("/api/agent/sessions")
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    assert (await viewer.get("/api/agent/sessions")).status_code == 200
    session = await new_session(agent_as(world.editor))
    r = await viewer.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "hi"})
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    r = await viewer.delete(f"/api/agent/sessions/{session['id']}")
    assert (r.status_code, r.json()) == (403, {"detail": "Requires editor role or higher"})
    no_org = world.editor.__class__(state="ok", user_id=world.editor.user_id)
    r = await agent_as(no_org).get("/api/agent/sessions")
    assert (r.status_code, r.json()) == (400, {"detail": "No organisation selected"})


async def test_sessions_are_scoped_to_user_and_organisation(agent_as, world):
    alice, alice_elsewhere = agent_as(world.editor), agent_as(world.editor_elsewhere)
    colleague, stranger = agent_as(world.editor2), agent_as(world.other)
    mine = await new_session(alice)
    theirs = await new_session(colleague)
    elsewhere = await new_session(alice_elsewhere)

    assert [s["id"] for s in (await alice.get("/api/agent/sessions")).json()] == [mine["id"]]
    assert [s["id"] for s in (await colleague.get("/api/agent/sessions")).json()] == [theirs["id"]]
    assert [s["id"] for s in (await alice_elsewhere.get("/api/agent/sessions")).json()] == [elsewhere["id"]]
    assert elsewhere["state"] == {"org_id": world.other_org}

    # another user's session, and the same user's session of another organisation: not found
    for client, session in [(colleague, mine), (stranger, mine), (alice_elsewhere, mine), (alice, elsewhere)]:
        for method, path, body in [
            ("GET", f"/api/agent/sessions/{session['id']}", None),
            ("DELETE", f"/api/agent/sessions/{session['id']}", None),
            ("POST", f"/api/agent/sessions/{session['id']}/chat", {"message": "hello"}),
        ]:
            r = await client.request(method, path, json=body)
            assert (r.status_code, r.json()) == (404, {"detail": "Session not found"}), (method, path)
    assert (await alice.get(f"/api/agent/sessions/{mine['id']}")).status_code == 200
    for unknown in ["nope", str(uuid.uuid4()), "x" * 300]:
        r = await alice.get(f"/api/agent/sessions/{unknown}")
        assert (r.status_code, r.json()) == (404, {"detail": "Session not found"})


async def test_sessions_survive_a_restart(agent_service, agent_as, world, script):
    alice = agent_as(world.editor)
    session = await new_session(alice)
    script.conversation("remember me", {"agent": "InterloperAgent", "text": "Noted."})
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "remember me"})
    assert r.status_code == 200 and "Noted." in r.text
    before = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()
    assert [e["author"] for e in before["events"]] == ["user", "InterloperAgent"]

    agent_service.process.restart()

    after = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()
    assert after == before
    listed = (await alice.get("/api/agent/sessions")).json()
    assert [(s["id"], s["event_count"]) for s in listed] == [(session["id"], 2)]
    # and the conversation goes on in the same session
    script.conversation("still there?", {"agent": "InterloperAgent", "text": "Yes."})
    r = await alice.post(f"/api/agent/sessions/{session['id']}/chat", json={"message": "still there?"})
    assert r.status_code == 200 and "Yes." in r.text
    events = (await alice.get(f"/api/agent/sessions/{session['id']}")).json()["events"]
    assert [e["content"]["parts"][0]["text"] for e in events] == ["remember me", "Noted.", "still there?", "Yes."]


async def test_a_nul_character_in_a_session_id_is_not_found(agent_as, world):
    alice = agent_as(world.editor)
    await new_session(alice)
    for method, path, body in [
        ("GET", "/api/agent/sessions/%00", None),
        ("GET", "/api/agent/sessions/a%00b", None),
        ("DELETE", "/api/agent/sessions/%00", None),
        ("POST", "/api/agent/sessions/%00/chat", {"message": "hello"}),
    ]:
        r = await alice.request(method, path, json=body)
        assert (r.status_code, r.json()) == (404, {"detail": "Session not found"}), (method, path)
