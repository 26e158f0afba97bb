"""The invitation e-mail flow through the running service: real JetStream, real PostgreSQL,
real aiosmtpd servers. Events are published as the identity service's outbox relay does."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from icp_stack.ports import free_port

# aiosmtpd warns about AUTH without TLS; the plain-text login tests do that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

FROM_ADDR = "noreply@interloper.dev"
PUBLIC_URL = "https://interloper.example.com"


def parts(message):
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_invitation_event_sends_one_email(env, smtp_server):
    server = smtp_server()
    settings = env.with_smtp(host=server.host, port=server.port)
    async with env.running(settings):
        event = env.event(org_name="Acme", inviter_name="Alice Admin", email="bob@example.com")
        await env.publish(event)
        [received] = await server.recorder.wait(1)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")
        await env.wait_settled()
        await asyncio.sleep(0.3)  # nothing else comes
    assert len(server.recorder.received) == 1
    message = received.message
    link = f"{PUBLIC_URL}/invite/{event['token']}"
    assert received.envelope_from == FROM_ADDR
    assert received.recipients == ["bob@example.com"]
    assert message["To"] == "bob@example.com"
    assert message["From"] == FROM_ADDR
    assert message["Subject"] == "You've been invited to join Acme on Interloper"
    assert message["Message-ID"] == f"<invitation.{event['event_id']}@interloper.dev>"
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert "Alice Admin has invited you to join the Acme organisation on Interloper." in text
    assert "Click the link below to accept the invitation:" in text
    assert link in text.splitlines()
    assert "This invitation expires in 7 days." in text
    assert "You've been invited to join Acme</h1>" in html
    assert "<strong>Acme</strong>" in html
    assert f'href="{link}"' in html
    assert "Accept Invitation" in html
    assert "#2563eb" in html
    assert "This invitation expires in 7 days." in html
    assert row["attempts"] == 1
    assert row["recipient"] == "bob@example.com"
    assert str(row["invitation_id"]) == event["invitation_id"]
    assert row["sent_at"] is not None and row["last_error"] is None


async def test_duplicate_event_is_not_mailed_twice(env, smtp_server):
    """The same event again: with the same Nats-Msg-Id (JetStream drops it) and with another
    message id after the duplicate window (our deliveries table acknowledges it unsent)."""
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event()
        await env.publish(event)
        await server.recorder.wait(1)
        await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")
        await env.publish(event)  # same Nats-Msg-Id: de-duplicated by JetStream
        await env.publish(event, msg_id="republished-later")  # reaches us: de-duplicated by event id
        await env.wait_settled()
        info = await env.consumer_info()
        assert info.delivered.stream_seq == 2  # two messages stored, both handled
        await asyncio.sleep(0.3)
    assert len(server.recorder.received) == 1
    assert (await env.delivery(event["event_id"]))["attempts"] == 1


async def test_resend_is_a_new_email_with_a_new_link(env, smtp_server):
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        first = env.event()
        await env.publish(first)
        await server.recorder.wait(1)
        # A resend is a new invitation: new event id, invitation id and token.
        second = env.event(email=first["email"], org_id=first["org_id"])
        await env.publish(second)
        received = await server.recorder.wait(2)
    links = [parts(r.message)[0] for r in received]
    assert f"/invite/{first['token']}" in links[0]
    assert f"/invite/{second['token']}" in links[1]
    assert first["token"] != second["token"]


async def test_smtp_server_down_then_back(env, smtp_server):
    """Connection refused while the event arrives: retried with backoff, sent once it is back."""
    port = free_port()
    settings = env.with_smtp(host="127.0.0.1", port=port, max_attempts=100)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["attempts"] >= 2)
        assert row["status"] == "retrying"
        assert row["last_error"]
        server = smtp_server(port)
        [received] = await server.recorder.wait(1)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")
        await env.wait_settled()
    assert received.recipients == [event["email"]]
    assert row["last_error"]  # the last failure stays recorded


async def test_permanent_failure_is_dead_lettered_after_max_attempts(env, smtp_server):
    server = smtp_server(data_reply="451 4.3.0 Mailbox temporarily unavailable")
    settings = env.with_smtp(host=server.host, port=server.port, max_attempts=3)
    before = {o: deliveries("invitation", o) for o in ("sent", "retry", "dead")}
    started = time.monotonic()
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
        [letter] = await env.dead_letters(1)
        await env.wait_settled()
    assert time.monotonic() - started > 0.1  # backoff between attempts
    assert row["attempts"] == 3
    assert "451" in row["last_error"]
    data = letter["data"]
    assert data["event_id"] == event["event_id"]
    assert data["invitation_id"] == event["invitation_id"]
    assert data["recipient"] == event["email"]
    assert data["attempts"] == 3
    assert data["kind"] == "invitation"
    assert "451" in data["error"]
    assert event["token"] not in json.dumps(data)  # the token never goes to the dead letters
    assert letter["headers"]["Nats-Msg-Id"] == event["event_id"]
    assert server.recorder.received == []
    # By outcome in /metrics: two failed attempts tried again, then given up, none sent.
    after = {o: deliveries("invitation", o) for o in ("sent", "retry", "dead")}
    assert {o: after[o] - before[o] for o in after} == {"sent": 0, "retry": 2, "dead": 1}


def deliveries(kind: str, outcome: str) -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value("icp_notifications_email_deliveries_total", {"kind": kind, "outcome": outcome}) or 0
    )


async def test_refused_recipient_is_dead_lettered_at_once(env, smtp_server):
    server = smtp_server(rcpt_reply="550 5.1.1 No such user here")
    async with env.running(env.with_smtp(host=server.host, port=server.port, max_attempts=5)):
        event = env.event(email="nobody@example.com")
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
        [letter] = await env.dead_letters(1)
    assert row["attempts"] == 1
    assert "550" in row["last_error"]
    assert letter["data"]["recipient"] == "nobody@example.com"


async def test_invalid_recipient_is_dead_lettered_without_contacting_smtp(env, smtp_server):
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event(email="x")  # identity does not validate addresses (spec 2.5)
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
        await env.dead_letters(1)
    assert "not an e-mail address" in row["last_error"]
    assert server.recorder.received == []


async def test_markup_in_names_is_escaped_in_html(env, smtp_server):
    server = smtp_server()
    org = '<img src=x onerror="alert(1)">Acme & Co'
    inviter = "<b>Eve</b> <script>steal()</script>"
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        await env.publish(env.event(org_name=org, inviter_name=inviter))
        [received] = await server.recorder.wait(1)
    text, html = parts(received.message)
    assert "<img" not in html and "<script" not in html and "<b>Eve" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Acme &amp; Co" in html
    assert "&lt;b&gt;Eve&lt;/b&gt; &lt;script&gt;steal()&lt;/script&gt;" in html
    # Plain text is not markup: the names appear as typed.
    assert f"{inviter} has invited you to join the {org} organisation on Interloper." in text
    assert received.message["Subject"] == f"You've been invited to join {org} on Interloper"


async def test_header_injection_in_org_name_is_neutralised(env, smtp_server):
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        await env.publish(env.event(org_name="Acme\r\nBcc: victim@example.com"))
        [received] = await server.recorder.wait(1)
    assert received.recipients == ["bob@example.com"]
    assert received.message["Bcc"] is None
    # (folded by the generator; Python keeps the space after "Subject:" when unfolding)
    assert (
        received.message["Subject"].strip() == "You've been invited to join Acme Bcc: victim@example.com on Interloper"
    )


async def test_smtp_not_configured_acknowledges_and_warns_once(env, caplog):
    caplog.set_level(logging.WARNING, logger="icp_notifications")
    async with env.running(env.with_smtp(host="")):
        events = [env.event(), env.event()]
        for event in events:
            await env.publish(event)
        for event in events:
            row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "skipped")
            assert row["attempts"] == 0
        await env.wait_settled()
    warnings = [r for r in caplog.records if "SMTP is not configured" in r.getMessage()]
    assert len(warnings) == 1


async def test_poison_messages_are_terminated_and_the_next_one_is_delivered(env, smtp_server, caplog):
    caplog.set_level(logging.ERROR, logger="icp_notifications")
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        await env.publish(b"not json at all")
        broken = env.event()
        del broken["invitation_id"]
        await env.publish(broken)
        good = env.event()
        await env.publish(good)
        await server.recorder.wait(1)
        await env.wait_settled()
        info = await env.consumer_info()
    assert info.num_redelivered == 0  # poison is terminated, never retried
    assert await env.delivery(broken["event_id"]) is None
    assert len(server.recorder.received) == 1
    assert len([r for r in caplog.records if "invalid invitation event" in r.getMessage()]) == 2


async def test_expired_invitation_is_not_mailed(env, smtp_server):
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event(expires_at="2020-01-01T00:00:00+00:00")
        await env.publish(event)
        await env.wait_delivery(event["event_id"], lambda r: r["status"] == "expired")
        await env.wait_settled()
    assert server.recorder.received == []


async def test_events_published_while_the_service_is_down_are_delivered_once_it_starts(env, smtp_server):
    """The durable consumer remembers its position: nothing is lost, nothing is sent twice."""
    server = smtp_server()
    settings = env.with_smtp(host=server.host, port=server.port)
    first, second = env.event(), env.event()
    await env.publish(first)  # before the consumer even exists
    async with env.running(settings):
        await server.recorder.wait(1)
        await env.wait_settled()
    await env.publish(second)  # while the service is stopped
    async with env.running(settings):
        received = await server.recorder.wait(2)
        await env.wait_settled()
        await asyncio.sleep(0.3)
    assert len(received) == 2
    assert f"/invite/{second['token']}" in parts(received[1].message)[0]


async def test_login_only_when_a_user_is_set(env, smtp_server):
    with_auth = smtp_server(credentials=("mailer", "s3cret"))
    async with env.running(env.with_smtp(host=with_auth.host, port=with_auth.port, user="mailer", password="s3cret")):
        await env.publish(env.event())
        [received] = await with_auth.recorder.wait(1)
    assert received.auth == "mailer"

    without_auth = smtp_server()
    async with env.running(env.with_smtp(host=without_auth.host, port=without_auth.port, user="", password="unused")):
        await env.publish(env.event())
        [received] = await without_auth.recorder.wait(1)
    assert received.auth is None


async def test_wrong_credentials_are_retried_and_recorded(env, smtp_server):
    server = smtp_server(credentials=("mailer", "s3cret"))
    settings = env.with_smtp(host=server.host, port=server.port, user="mailer", password="wrong", max_attempts=2)
    async with env.running(settings):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "dead")
    assert row["attempts"] == 2
    assert "535" in row["last_error"]


async def test_metrics_and_readiness(env, smtp_server):
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)) as app:
        ready = await env.get(app, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"postgres": True, "nats": True, "consumer": True}
        await env.publish(env.event())
        await server.recorder.wait(1)
        await env.wait_settled()
        metrics = (await env.get(app, "/metrics")).text
    sent = [
        line
        for line in metrics.splitlines()
        if line.startswith('icp_notifications_emails_sent_total{kind="invitation"}')
    ]
    assert sent and float(sent[0].split()[-1]) >= 1
    assert deliveries("invitation", "sent") >= 1
    for name in (
        "icp_notifications_send_failures_total",
        "icp_notifications_dead_letters_total",
        "icp_notifications_events_skipped_total",
        "icp_notifications_smtp_send_seconds",
    ):
        assert name in metrics


async def test_a_token_in_the_event_is_never_mailed(env, smtp_server):
    """A forged (or old-style) event carrying its own token: the e-mail carries the link identity
    issues for the invitation, never a link a publisher chose (phishing through the platform)."""
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event()
        forged = {**event, "token": "attacker-chosen", "accept_url_path": "/invite/attacker-chosen"}
        await env.publish(json.dumps(forged).encode(), msg_id=event["event_id"])
        [received] = await server.recorder.wait(1)
        await env.wait_settled()
    text, html = parts(received.message)
    assert "attacker-chosen" not in text + html
    assert f"{PUBLIC_URL}/invite/{event['token']}" in text
    assert env.identity.calls == [event["invitation_id"]]


async def test_an_invitation_no_longer_pending_is_not_mailed(env, smtp_server):
    """Identity has no link for it (accepted, revoked, replaced, or the event was forged)."""
    server = smtp_server()
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event()
        del env.identity.tokens[event["invitation_id"]]
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "expired")
        await env.wait_settled()
    assert server.recorder.received == []
    assert (row["attempts"], row["last_error"]) == (0, "invitation no longer pending")


async def test_identity_unavailable_is_retried_then_mailed_once(env, smtp_server):
    server = smtp_server()
    env.identity.unavailable = True
    async with env.running(env.with_smtp(host=server.host, port=server.port)):
        event = env.event()
        await env.publish(event)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "retrying")
        assert "UNAVAILABLE" in row["last_error"]
        env.identity.unavailable = False
        [received] = await server.recorder.wait(1)
        row = await env.wait_delivery(event["event_id"], lambda r: r["status"] == "sent")
        await env.wait_settled()
    assert f"{PUBLIC_URL}/invite/{event['token']}" in parts(received.message)[0]
    assert len(server.recorder.received) == 1 and row["attempts"] >= 2
