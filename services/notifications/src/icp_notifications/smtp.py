"""Sending over SMTP (aiosmtplib): transport security, certificate verification, login only
when a user is set, and the classification of failures into transient and permanent."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from .settings import SmtpSettings


class SendError(Exception):
    """The message was not accepted. `permanent`: retrying the same message cannot help."""

    permanent = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    permanent = False


class PermanentSendError(SendError):
    permanent = True


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"


def classify(exc: Exception) -> SendError:
    """5xx refusals of the recipient or of the message itself are permanent; everything else
    (connection, timeout, TLS, authentication, sender refused, 4xx) is worth retrying: those
    are outages or configuration errors an operator can fix while we back off."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        cls = PermanentSendError if permanent else TransientSendError
        return cls(describe(exc), code=codes[0] if codes else None)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        cls = PermanentSendError if exc.code >= 500 else TransientSendError
        return cls(describe(exc), code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return TransientSendError(describe(exc), code=exc.code)
    return TransientSendError(describe(exc))


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Mailer:
    """One SMTP connection per message (invitations are rare; no pool to keep healthy)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        security = settings.effective_security
        self._use_tls = security == "tls"
        self._start_tls = security == "starttls"
        self._context = tls_context(settings) if security != "none" else None

    @property
    def configured(self) -> bool:
        return self.settings.enabled

    async def send(self, message: EmailMessage) -> None:
        """Send, or raise TransientSendError / PermanentSendError."""
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host.strip(),
            port=s.port,
            timeout=s.timeout_seconds,
            use_tls=self._use_tls,
            start_tls=self._start_tls,
            validate_certs=s.verify,
            tls_context=self._context,
        )
        try:
            async with client:
                if s.user:
                    await client.login(s.user, s.password.get_secret_value())
                await client.send_message(message, sender=s.from_addr)
        except SendError:
            raise
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
            raise classify(exc) from exc
