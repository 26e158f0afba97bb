"""Authenticate: one SQL query, hashed tokens, server-side expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from icp_identity.security import hash_token
from icp_identity.sessions import service


async def test_authenticate_ok_is_one_query(world, db, count_queries):
    async with db() as s:
        with count_queries() as counter:
            identity = await service.authenticate(s, world.editor.token)
    assert counter.count == 1, counter.statements
    assert identity.state == "ok"
    assert identity.user_id == str(world.editor.user_id)
    assert identity.session_id == str(world.editor.session_id)
    assert identity.email == "editor@a.example"
    assert identity.name == "Editor A"
    assert identity.org_id == str(world.org_a)
    assert identity.org_exists is True
    assert identity.role == "editor"
    assert identity.last_organisation_id == str(world.org_a)


async def test_authenticate_other_states(world, db, count_queries):
    async with db() as s:
        with count_queries() as counter:
            assert (await service.authenticate(s, "")).state == "anonymous"
            assert (await service.authenticate(s, None)).state == "anonymous"
            assert (await service.authenticate(s, "x" * 10_000)).state == "invalid"
        assert counter.count == 0
        with count_queries() as counter:
            assert (await service.authenticate(s, "bogus")).state == "invalid"
        assert counter.count == 1
        no_org = await service.authenticate(s, world.no_org.token)
        assert (no_org.state, no_org.org_id, no_org.org_exists, no_org.role) == ("ok", None, False, None)
        removed = await service.authenticate(s, world.removed.token)
        assert (removed.org_id, removed.org_exists, removed.role) == (str(world.org_a), True, None)


async def test_tokens_are_stored_hashed_with_server_side_expiry(world, db, settings):
    async with db() as s:
        row = (
            await s.execute(
                text("SELECT token_hash, expires_at, created_at FROM sessions WHERE id = :id"),
                {"id": world.owner.session_id},
            )
        ).one()
        everything = (await s.execute(text("SELECT string_agg(token_hash, ',') FROM sessions"))).scalar_one()
    assert row.token_hash == hash_token(world.owner.token)
    assert world.owner.token not in everything
    assert len(world.owner.token) == 64
    lifetime = row.expires_at - row.created_at
    assert abs(lifetime - timedelta(days=settings.auth.session_expiry_days)) < timedelta(seconds=5)


async def test_expired_sessions_are_invalid_and_cleaned_up_at_next_sign_in(world, db, make_user):
    async with db() as s:
        await s.execute(
            text("UPDATE sessions SET expires_at = now() - interval '1 day' WHERE user_id = :u"),
            {"u": world.viewer.user_id},
        )
        assert (await service.authenticate(s, world.viewer.token)).state == "invalid"
    await make_user("viewer@a.example")
    async with db() as s:
        left = (
            await s.execute(
                text("SELECT count(*), min(expires_at) FROM sessions WHERE user_id = :u"), {"u": world.viewer.user_id}
            )
        ).one()
    assert left[0] == 1
    assert left[1] > datetime.now(UTC)


async def test_a_session_dies_with_its_profile(world, db):
    async with db() as s:
        await s.execute(text("DELETE FROM profiles WHERE id = :u"), {"u": world.no_org.user_id})
        assert (await service.authenticate(s, world.no_org.token)).state == "invalid"
