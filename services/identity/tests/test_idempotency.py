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
