"""A mail catcher for the local stack: an SMTP server (aiosmtpd) that accepts every message,
writes it to `<dir>/<timestamp>-<id>.eml` and prints one line per message with the
invitation's accept link, e.g.

    mail to bob@example.com: "You've been invited to join Acme on Interloper" -- accept:
    http://127.0.0.1:8080/invite/... (saved .data/mail/20261127T101500.123456Z-1a2b3c4d.eml)

(on one line).

`interloper-notifications mailcatcher --port 1025 --dir .data/mail`. Any credentials are
accepted (so a configuration with INTERLOPER_SMTP_USER works against it too); no TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger(__name__)

ACCEPT_LINK = re.compile(r"https?://[^\s<>\"']+/invite/[A-Za-z0-9_\-.~%]+")


def find_accept_link(message: EmailMessage) -> str | None:
    """The first `/invite/<token>` link of the text part (else of the HTML part)."""
    for subtype in ("plain", "html"):
        part = message.get_body(preferencelist=(subtype,))
        if part is None:
            continue
        content = part.get_content()
        if isinstance(content, str):
            match = ACCEPT_LINK.search(content)
            if match:
                return match.group(0)
    return None


class MailCatcher:
    """aiosmtpd handler: every message is accepted, saved as .eml and announced on one line."""

    def __init__(self, directory: Path, out: TextIO | None = None) -> None:
        self.directory = Path(directory)
        self.out = out if out is not None else sys.stdout
        self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written .eml
        return path

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: Any = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        path = await asyncio.to_thread(self.save, data)
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        recipients = ", ".join(envelope.rcpt_tos) or str(message.get("To", "?"))
        line = f'mail to {recipients}: "{message.get("Subject", "")}"'
        link = find_accept_link(message)
        if link:
            line += f" -- accept: {link}"
        line += f" (saved {path})"
        print(line, file=self.out, flush=True)
        return "250 Message accepted for delivery"


def _accept_any_login(*_: Any) -> AuthResult:
    return AuthResult(success=True)


def smtp_factory(handler: MailCatcher, hostname: str = "interloper-mailcatcher") -> SMTP:
    return SMTP(
        handler,
        hostname=hostname,
        enable_SMTPUTF8=True,
        authenticator=_accept_any_login,
        auth_require_tls=False,
    )


async def serve(host: str, port: int, directory: Path, stop: asyncio.Event, out: TextIO | None = None) -> None:
    """Serve until `stop` is set."""
    handler = MailCatcher(directory, out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: smtp_factory(handler), host, port)
    log.info("mail catcher listening on smtp://%s:%d, saving messages to %s", host, port, handler.directory)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
