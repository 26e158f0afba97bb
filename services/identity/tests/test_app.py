"""The app as a whole (health, OpenAPI) and the `interloper-identity` CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icp_identity.cli import build_parser, create_session
from icp_identity.sessions import service as sessions_service

EXE = Path(sys.executable).parent / "interloper-identity"


async def test_health(client_for):
    client = client_for()
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "identity"}
    r = await client.get("/readyz")
    assert (r.status_code, r.json()["checks"]) == (200, {"postgres": True})


def test_public_routes(app):
    assert set(app.openapi()["paths"]) == {
        "/api/auth/google",
        "/api/auth/google/callback",
        "/api/auth/oidc",
        "/api/auth/oidc/{provider}/login",
        "/api/auth/oidc/{provider}/callback",
        "/api/auth/dev-login",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/auth/switch-org",
        "/api/auth/accept-invite",
        "/api/organisations",
        "/api/organisations/members",
        "/api/organisations/members/{user_id}",
        "/api/organisations/invitations",
        "/api/organisations/invite",
        "/api/organisations/invitations/{invitation_id}",
        "/api/tokens",
        "/api/tokens/{token_id}",
        "/api/organisations/invitations/{invitation_id}/resend",
        "/api/audit",
    }


@pytest.mark.parametrize("argv", [[], ["serve"], ["migrate"], ["session"], ["session", "create"]])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    assert "usage: interloper-identity" in capsys.readouterr().out


def test_session_create_needs_an_email(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["session", "create"])
    assert exit_.value.code == 2
    assert "--email" in capsys.readouterr().err


async def test_session_create_function(settings, db):
    token = await create_session(settings, "cli@example.com", "Cli")
    async with db() as s:
        identity = await sessions_service.authenticate(s, token)
    assert (identity.state, identity.email, identity.name, identity.org_id) == ("ok", "cli@example.com", "Cli", None)


async def test_session_create_command(settings, db):
    env = {
        **os.environ,
        "INTERLOPER_POSTGRES_HOST": settings.postgres.host,
        "INTERLOPER_POSTGRES_PORT": str(settings.postgres.port),
        "INTERLOPER_POSTGRES_USER": settings.postgres.user,
        "INTERLOPER_POSTGRES_PASSWORD": settings.postgres.password.get_secret_value(),
        "INTERLOPER_POSTGRES_DATABASE": settings.postgres.database,
        "INTERLOPER_LOG_LEVEL": "WARNING",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [str(EXE), "session", "create", "--email", "ops@example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(token) == 64
    async with db() as s:
        identity = await sessions_service.authenticate(s, token)
    assert (identity.state, identity.email, identity.name) == ("ok", "ops@example.com", None)
