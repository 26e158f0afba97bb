"""The local mail catcher: every message saved as .eml, one clear line with the accept link."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import aiosmtplib

from icp_notifications.invitations.rendering import build_message, render_invitation
from icp_notifications.invitations.schemas import InvitationCreated
from icp_notifications.mailcatcher import serve
from icp_stack.ports import free_port


def invitation_message(token: str):
    now = datetime.now(UTC)
    event = InvitationCreated(
        event_id=uuid.uuid4(),
        invitation_id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        org_name="Acme",
        email="bob@example.com",
        inviter_name="Alice",
        expires_at=now + timedelta(days=7),
    )
    mail = render_invitation(event, token=token, public_url="http://127.0.0.1:8080", now=now)
    return build_message(mail, from_addr="noreply@interloper.dev", message_id="<x@interloper.dev>", now=now)


async def test_saves_eml_and_prints_the_accept_link(tmp_path):
    port, out, stop = free_port(), io.StringIO(), asyncio.Event()
    task = asyncio.create_task(serve("127.0.0.1", port, tmp_path / "mail", stop, out))
    try:
        for _ in range(100):
            try:
                await aiosmtplib.send(
                    invitation_message("tok-123"), hostname="127.0.0.1", port=port, start_tls=False, timeout=5
                )
                break
            except aiosmtplib.SMTPConnectError:
                await asyncio.sleep(0.05)
        # Credentials are accepted too (a configuration with INTERLOPER_SMTP_USER works locally).
        await aiosmtplib.send(
            invitation_message("tok-456"),
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            username="any",
            password="thing",
            timeout=5,
        )
    finally:
        stop.set()
        await task
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    message = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert message["To"] == "bob@example.com"
    assert "http://127.0.0.1:8080/invite/tok-123" in message.get_body(preferencelist=("plain",)).get_content()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('mail to bob@example.com: "You\'ve been invited to join Acme on Interloper"')
    assert "-- accept: http://127.0.0.1:8080/invite/tok-123 " in lines[0]
    assert str(files[0]) in lines[0]
    assert "/invite/tok-456" in lines[1]


def test_command_line(tmp_path):
    """`interloper-notifications mailcatcher --port P --dir D` runs until SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "interloper-notifications"),
            "mailcatcher",
            "--port",
            str(port),
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"INTERLOPER_LOG_FORMAT": "text", "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                asyncio.run(
                    aiosmtplib.send(
                        invitation_message("cli-token"), hostname="127.0.0.1", port=port, start_tls=False, timeout=5
                    )
                )
                break
            except aiosmtplib.SMTPConnectError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the mail catcher did not start"
                time.sleep(0.1)
        assert len(list(tmp_path.glob("*.eml"))) == 1
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "-- accept: http://127.0.0.1:8080/invite/cli-token" in out
    assert "mail catcher listening on smtp://127.0.0.1:" in err
