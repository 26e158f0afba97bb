"""`Idempotency-Key` on identity's creating POSTs (issue 22.4): a retried invitation or new
organisation replays the first answer instead of creating (and e-mailing) a second one."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

KEY = "Idempotency-Key"


async def count(db, table: str) -> int:
    async with db() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_retried_invitation_is_created_once(clients, db, outbox):
    body = {"email": "bob@example.com", "role": "editor"}
    first = await clients.admin.post("/api/organisations/invite", json=body, headers={KEY: "inv-1"})
    again = await clients.admin.post("/api/organisations/invite", json=body, headers={KEY: "inv-1"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert await count(db, "invitations") == 1
    assert len(await outbox("identity.invitation.created")) == 1  # one e-mail
    r = await clients.admin.post(
        "/api/organisations/invite", json={**body, "email": "carol@example.com"}, headers={KEY: "inv-1"}
    )
    assert (r.status_code, r.json()) == (
        422,
        {"detail": "Idempotency-Key 'inv-1' was already used for a different request"},
    )
    # another organisation's admin with the same key invites on its own
    r = await clients.other_org.post("/api/organisations/invite", json=body, headers={KEY: "inv-1"})
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    assert await count(db, "invitations") == 2


async def test_concurrent_duplicate_organisations(clients, db):
    answers = await asyncio.gather(
        *(clients.no_org.post("/api/organisations", json={"name": "Acme"}, headers={KEY: "org"}) for _ in range(3))
    )
    assert [r.status_code for r in answers] == [201] * 3
    assert len({r.json()["id"] for r in answers}) == 1
    async with db() as s:
        names = (await s.execute(text("SELECT count(*) FROM organisations WHERE name = 'Acme'"))).scalar_one()
    assert names == 1
    # keys are per user: another user's identical key creates its own organisation
    r = await clients.viewer.post("/api/organisations", json={"name": "Acme"}, headers={KEY: "org"})
    assert r.status_code == 201 and r.json()["id"] != answers[0].json()["id"]
    r = await clients.viewer.post("/api/organisations", json={"name": "Acme"}, headers={KEY: "\x01"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Idempotency-Key must be")


async def test_without_a_key_nothing_changes(clients, db):
    for _ in range(2):
        assert (await clients.no_org.post("/api/organisations", json={"name": "Twice"})).status_code == 201
    assert await count(db, "idempotency_keys") == 0
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM organisations WHERE name = 'Twice'"))).scalar_one() == 2


async def test_retried_resend_sends_once(clients, db, outbox):
    invitation = await clients.admin.post(
        "/api/organisations/invite", json={"email": "dan@example.com", "role": "viewer"}
    )
    url = f"/api/organisations/invitations/{invitation.json()['id']}/resend"
    first = await clients.admin.post(url, headers={KEY: "resend-1"})
    again = await clients.admin.post(url, headers={KEY: "resend-1"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json() == {"status": "ok"} and again.headers["idempotent-replayed"] == "true"
    assert await count(db, "invitations") == 1
    assert len(await outbox("identity.invitation.created")) == 2  # the invitation, one resend
    # without the key a retry finds the replaced invitation gone (what a client saw before)
    assert (await clients.admin.post(url)).status_code == 404


async def test_keys_are_per_user_and_organisation(clients, db):
    """Another admin of the same organisation, or of another one, reusing a key (the same body or
    not) makes its own invitation: no replay of someone else's answer, no 422 revealing the key."""
    body = {"email": "erin@example.com", "role": "viewer"}
    first = await clients.admin.post("/api/organisations/invite", json=body, headers={KEY: "team"})
    assert first.status_code == 201
    for client, other in ((clients.owner, {"email": "fay@example.com", "role": "editor"}), (clients.other_org, body)):
        r = await client.post("/api/organisations/invite", json=other, headers={KEY: "team"})
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers, r.text
        assert r.json()["id"] != first.json()["id"] and r.json()["email"] == other["email"]
    assert await count(db, "invitations") == 3


def test_the_header_is_documented_on_every_creating_post(app):
    paths = app.openapi()["paths"]
    for path in (
        "/api/organisations",
        "/api/organisations/invite",
        "/api/organisations/invitations/{invitation_id}/resend",
    ):
        params = {p["name"]: p for p in paths[path]["post"]["parameters"] if p["in"] == "header"}
        assert KEY in params, path
        assert "replays the first answer" in params[KEY]["description"]
