"""Transport security against real aiosmtpd servers with a self-signed certificate: mandatory
STARTTLS and implicit TLS, certificate verification on (fails, recorded; or trusted through
INTERLOPER_SMTP_CA_FILE) and off; and the classification of SMTP failures."""

from __future__ import annotations

import aiosmtplib
import pytest

from icp_notifications.settings import SmtpSettings
from icp_notifications.smtp import PermanentSendError, TransientSendError, classify


async def test_starttls_without_verification(env, smtp_server, certificate):
    server = smtp_server(mode="starttls", certificate=certificate)
    settings = env.with_smtp(host=server.host, port=server.port, security="starttls", verify=False)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        [received] = await server.recorder.wait(1)
        await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")
    assert received.recipients == [event["email"]]


async def test_implicit_tls_without_verification(env, smtp_server, certificate):
    server = smtp_server(mode="tls", certificate=certificate)
    settings = env.with_smtp(host=server.host, port=server.port, security="tls", verify=False)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        await server.recorder.wait(1)
        await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_verification_on_refuses_a_self_signed_certificate(env, smtp_server, certificate, mode):
    server = smtp_server(mode=mode, certificate=certificate)
    settings = env.with_smtp(host=server.host, port=server.port, security=mode, verify=True, max_attempts=2)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
    assert row["attempts"] == 2
    assert "certificate verify failed" in row["last_error"].lower()
    assert server.recorder.received == []


async def test_verification_on_with_the_certificate_as_ca_file(env, smtp_server, certificate):
    server = smtp_server(mode="tls", certificate=certificate)
    settings = env.with_smtp(
        host=server.host, port=server.port, security="tls", verify=True, ca_file=str(certificate.cert_path)
    )
    async with env.running(settings):
        await env.publish(env.event())
        await server.recorder.wait(1)


async def test_starttls_required_but_not_offered_is_a_failure(env, smtp_server):
    server = smtp_server()  # plain server without STARTTLS
    settings = env.with_smtp(host=server.host, port=server.port, security="starttls", max_attempts=1)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
    assert "starttls" in row["last_error"].lower()
    assert server.recorder.received == []


def test_security_defaults_follow_the_port():
    assert SmtpSettings(port=465).effective_security == "tls"
    assert SmtpSettings(port=587).effective_security == "starttls"
    assert SmtpSettings(port=25).effective_security == "starttls"
    assert SmtpSettings(port=465, security="none").effective_security == "none"


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("INTERLOPER_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("INTERLOPER_SMTP_PORT", "465")
    monkeypatch.setenv("INTERLOPER_SMTP_USER", "mailer")
    monkeypatch.setenv("INTERLOPER_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("INTERLOPER_SMTP_VERIFY", "false")
    monkeypatch.setenv("INTERLOPER_SMTP_MAX_ATTEMPTS", "3")
    s = SmtpSettings()
    assert (s.host, s.port, s.user, s.password.get_secret_value()) == ("smtp.example.com", 465, "mailer", "pw")
    assert s.enabled and not s.verify and s.max_attempts == 3 and s.effective_security == "tls"
    assert s.from_addr == "noreply@interloper.dev"
    assert not SmtpSettings(host="").enabled


def test_classification():
    refused_550 = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "a@b")])
    refused_450 = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "later", "a@b")])
    assert isinstance(classify(refused_550), PermanentSendError)
    assert isinstance(classify(refused_450), TransientSendError)
    assert isinstance(classify(aiosmtplib.SMTPDataError(554, "rejected")), PermanentSendError)
    assert isinstance(classify(aiosmtplib.SMTPDataError(451, "later")), TransientSendError)
    assert isinstance(classify(aiosmtplib.SMTPAuthenticationError(535, "bad")), TransientSendError)
    assert isinstance(classify(aiosmtplib.SMTPSenderRefused(550, "no", "x@y")), TransientSendError)
    assert isinstance(classify(aiosmtplib.SMTPConnectError("refused")), TransientSendError)
    assert isinstance(classify(ConnectionRefusedError()), TransientSendError)
