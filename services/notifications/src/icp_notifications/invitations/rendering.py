"""The invitation e-mail of spec 10, rendered from Jinja templates with HTML autoescaping (an
organisation or inviter name containing markup is shown as text, unlike the reference)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .schemas import InvitationCreated

_env = Environment(
    loader=PackageLoader("icp_notifications", "templates"),
    # .html escaped, .txt not (plain text is not markup); anything else escaped to be safe.
    autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",), default=True),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class InvalidMessage(ValueError):
    """The event cannot become an e-mail (e.g. the recipient is not an e-mail address)."""


@dataclass(frozen=True)
class RenderedEmail:
    recipient: str
    subject: str
    text: str
    html: str
    accept_url: str


def one_line(value: str) -> str:
    """Control characters (CR/LF included) and runs of spaces become one space."""
    return " ".join(_CONTROL.sub(" ", value).split())


def accept_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/invite/{quote(token, safe='')}"


def expiry_note(expires_at: datetime, now: datetime) -> str:
    days = math.ceil((expires_at - now).total_seconds() / 86400)
    if days <= 1:
        return "This invitation expires in 1 day."
    return f"This invitation expires in {days} days."


def render_invitation(event: InvitationCreated, *, token: str, public_url: str, now: datetime) -> RenderedEmail:
    """The e-mail of `event`, whose accept link carries `token` (issued by identity for it)."""
    org = one_line(event.org_name) or "Unknown"
    inviter = one_line(event.inviter_name) or one_line(event.inviter_email) or "Someone"
    subject = f"You've been invited to join {org} on Interloper"
    context = {
        "org": org,
        "inviter": inviter,
        "subject": subject,
        "accept_url": accept_url(public_url, token),
        "expiry_note": expiry_note(event.expires_at, now),
    }
    return RenderedEmail(
        recipient=event.email.strip(),
        subject=subject,
        text=_env.get_template("invitation.txt").render(context),
        html=_env.get_template("invitation.html").render(context),
        accept_url=context["accept_url"],
    )


def recipient_address(value: str) -> Address:
    """The recipient as an address, or InvalidMessage (identity does not validate e-mails)."""
    if not value or _CONTROL.search(value) or value.count("@") != 1:
        raise InvalidMessage(f"not an e-mail address: {value!r}")
    local, _, domain = value.rpartition("@")
    if not local or not domain or any(c.isspace() for c in value):
        raise InvalidMessage(f"not an e-mail address: {value!r}")
    try:
        return Address(addr_spec=value)
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidMessage(f"not an e-mail address: {value!r} ({exc})") from exc


def build_message(email: RenderedEmail, *, from_addr: str, message_id: str, now: datetime) -> EmailMessage:
    """`multipart/alternative` with the text and the HTML part."""
    message = EmailMessage()
    message["From"] = from_addr
    message["To"] = recipient_address(email.recipient)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def message_id_for(event_id: object, from_addr: str) -> str:
    """Stable per event: a receiving server can recognise a re-sent copy of the same e-mail."""
    domain = from_addr.rpartition("@")[2].strip(" >") or "interloper.invalid"
    return f"<invitation.{event_id}@{domain}>"
