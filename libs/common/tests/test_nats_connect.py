"""icp_common.nats.connect against the real nats-server with its per-service users: a refused
login (wrong password, no credentials) ends the process with a clear error instead of the silent
endless retry of nats-py, and the right credentials still connect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from icp_common import nats as nats_helpers
from icp_common.settings import NatsSettings

# Only a guard against the old endless hang; a refused login fails at its first answer.
GUARD_SECONDS = 60


@pytest.mark.parametrize(
    ("user", "password"),
    [("identity", "guessed"), ("", "")],
    ids=["wrong-password", "no-credentials"],
)
async def test_a_refused_login_is_a_clear_error_not_a_hang(
    nats_server: Any, caplog: pytest.LogCaptureFixture, user: str, password: str
) -> None:
    settings = NatsSettings(url=nats_server.plain_url, user=user, password=SecretStr(password))
    # In this task (asyncio.timeout, not wait_for): a SystemExit raised in another task stops the loop.
    with caplog.at_level(logging.ERROR, logger="icp_common.nats"), pytest.raises(SystemExit) as exited:
        async with asyncio.timeout(GUARD_SECONDS):
            await nats_helpers.connect(settings, "test")
    message = str(exited.value)
    assert "refused" in message and "INTERLOPER_NATS_PASSWORD" in message
    if password:
        assert password not in message  # never the secret in the log
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("NATS refused the credentials" in e and "INTERLOPER_NATS_USER" in e for e in errors), errors


async def test_the_right_credentials_connect(nats_server: Any) -> None:
    settings = NatsSettings(
        url=nats_server.plain_url, user="identity", password=SecretStr(nats_server.passwords["identity"])
    )
    nc = await nats_helpers.connect(settings, "test")
    try:
        assert nc.is_connected
    finally:
        await nats_helpers.close(nc)
