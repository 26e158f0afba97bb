"""Failure alerts: the rules API (admins of the organisation, strict validation, no SSRF targets)
and delivery of pipelines' alert events (e-mail over real SMTP, signed webhooks to a local
receiver, retries, dead letters, one message per event and target across redeliveries)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_notifications.alerts.targets import TargetRefused, WebhookRequest, WebhookSender, check_url, resolve
from icp_testing.webhooks import WebhookReceiver

from .conftest import PUBLIC_URL, SECRET, Env

SIGNER = IdentitySigner(SECRET.encode(), audience="notifications")


# ------------------------------------------------------------------------------ URL checks

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",  # CGNAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://0.0.0.0/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://localhost:8080/hook",
    "http://api.localhost/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "file:///etc/passwd",
    "ftp://example.com/hook",
    "gopher://example.com/",
    "https:///no-host",
    "http://example.com:99999/",
    "http://exa mple.com/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_or_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T0/B0/x", "http://93.184.216.34:8080/h"])
def test_public_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_private=False).hostname


def test_allow_private_targets_allows_addresses_but_not_other_schemes() -> None:
    assert check_url("http://127.0.0.1:9/h", allow_private=True).port == 9
    with pytest.raises(TargetRefused):
        check_url("file:///etc/passwd", allow_private=True)


async def test_a_name_resolving_to_loopback_is_refused_at_delivery() -> None:
    """DNS rebinding: the host name passes the static check, its address does not; nothing is sent."""
    name = socket.gethostname()  # resolves to 127.0.x.x (or a private address) on test machines
    check_url(f"http://{name}/hook", allow_private=False)  # a name: accepted when saved
    with pytest.raises(TargetRefused):
        await resolve(name, 80, allow_private=False)
    receiver = await WebhookReceiver(host="127.0.0.1").start()
    sender = WebhookSender(timeout=5, allow_private=False)
    try:
        with pytest.raises(TargetRefused):
            await sender.send(WebhookRequest(f"http://{name}:{receiver.port}/hook", {"x": 1}, "e1"))
        assert receiver.requests == []
    finally:
        await sender.close()
        await receiver.stop()


# ------------------------------------------------------------------------------ the rules API


def _headers(org_id: uuid.UUID, role: str | None = "admin", *, state: str = "ok") -> dict[str, str]:
    identity = Identity(
        state=state,  # type: ignore[arg-type]
        user_id=str(uuid.uuid4()),
        email="alice@example.com",
        org_id=str(org_id),
        org_exists=True,
        role=role,
    )
    return {IDENTITY_HEADER: SIGNER.sign(identity)}


async def _call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifications") as client:
        return await client.request(method, path, **kwargs)


def _rules(receiver_url: str, job_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "rules": [
            {
                "on": "run_failed",
                "jobs": [str(job_id)] if job_id else None,
                "email": ["ops@example.com"],
                "webhooks": [
                    {"url": receiver_url, "format": "json", "secret": "s3cret-s3cret-s3cret"},
                    {"url": receiver_url + "/slack", "format": "slack"},
                ],
            }
        ]
    }


async def _stored(env: Env) -> list[Any]:
    async with env.engine.connect() as conn:
        return list((await conn.execute(text("SELECT org_id, rules FROM alert_rules"))).all())


async def test_admin_reads_and_replaces_the_rules_secrets_are_write_only(env: Env) -> None:
    org = uuid.uuid4()
    async with env.running() as app:
        empty = await _call(app, "GET", f"/api/organisations/{org}/alerts", headers=_headers(org))
        assert empty.status_code == 200 and empty.json() == {"rules": []}
        put = await _call(
            app,
            "PUT",
            f"/api/organisations/{org}/alerts",
            headers=_headers(org),
            json=_rules("https://hooks.example.com/a"),
        )
        assert put.status_code == 200, put.text
        rule = put.json()["rules"][0]
        assert uuid.UUID(rule["id"]) and rule["on"] == "run_failed" and rule["jobs"] is None
        assert rule["webhooks"][0] == {"url": "https://hooks.example.com/a", "format": "json", "secret_set": True}
        assert rule["webhooks"][1]["secret_set"] is False
        assert "s3cret" not in put.text
        # Round trip of what GET shows (no secret): the stored secret is kept.
        got = await _call(app, "GET", f"/api/organisations/{org}/alerts", headers=_headers(org))
        again = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=got.json())
        assert again.status_code == 200 and again.json() == got.json()
    [(org_id, stored)] = await _stored(env)
    assert org_id == org and stored[0]["webhooks"][0]["secret"] == "s3cret-s3cret-s3cret"


async def test_non_admins_other_organisations_and_anonymous_callers_are_refused(env: Env) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    body = _rules("https://hooks.example.com/a")
    async with env.running() as app:
        for role in ("viewer", "editor"):
            for method in ("GET", "PUT"):
                r = await _call(app, method, f"/api/organisations/{org}/alerts", headers=_headers(org, role), json=body)
                assert r.status_code == 403, (role, method, r.text)
        # An admin of one organisation asking for another one's rules: 404, nothing revealed.
        for method in ("GET", "PUT"):
            r = await _call(app, method, f"/api/organisations/{other}/alerts", headers=_headers(org), json=body)
            assert r.status_code == 404 and r.json() == {"detail": "Organisation not found"}
        r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", json=body)
        assert r.status_code == 401
        forged = {
            IDENTITY_HEADER: IdentitySigner(b"not-the-secret", audience="notifications").sign(
                Identity(state="ok", user_id=str(uuid.uuid4()), org_id=str(org), org_exists=True, role="admin")
            )
        }
        r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=forged, json=body)
        assert r.status_code == 401
        # A viewer with an invalid body: the role check answers first (spec error precedence).
        r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org, "viewer"), json={"x": 1})
        assert r.status_code == 403
    assert await _stored(env) == []


INVALID: list[tuple[str, Any]] = [
    ("unknown field", {"rules": [{"on": "run_failed", "email": ["a@b.c"], "extra": 1}]}),
    ("unknown event", {"rules": [{"on": "run_exploded", "email": ["a@b.c"]}]}),
    ("stuck without minutes", {"rules": [{"on": "run_stuck", "email": ["a@b.c"]}]}),
    ("minutes without stuck", {"rules": [{"on": "run_failed", "stuck_minutes": 5, "email": ["a@b.c"]}]}),
    ("stuck off the ladder", {"rules": [{"on": "run_stuck", "stuck_minutes": 7, "email": ["a@b.c"]}]}),
    ("no target", {"rules": [{"on": "run_failed"}]}),
    ("bad address", {"rules": [{"on": "run_failed", "email": ["not an address"]}]}),
    ("header injection", {"rules": [{"on": "run_failed", "email": ["a@b.c\r\nBcc: x@y.z"]}]}),
    ("bad job id", {"rules": [{"on": "run_failed", "jobs": ["nope"], "email": ["a@b.c"]}]}),
    ("bad format", {"rules": [{"on": "run_failed", "webhooks": [{"url": "https://e.com", "format": "xml"}]}]}),
    ("short secret", {"rules": [{"on": "run_failed", "webhooks": [{"url": "https://e.com", "secret": "x"}]}]}),
    ("loopback", {"rules": [{"on": "run_failed", "webhooks": [{"url": "http://127.0.0.1:1/h"}]}]}),
    ("metadata", {"rules": [{"on": "run_failed", "webhooks": [{"url": "http://169.254.169.254/"}]}]}),
    ("private", {"rules": [{"on": "run_failed", "webhooks": [{"url": "http://10.1.2.3/"}]}]}),
    ("ipv6 loopback", {"rules": [{"on": "run_failed", "webhooks": [{"url": "http://[::1]/"}]}]}),
    ("file", {"rules": [{"on": "run_failed", "webhooks": [{"url": "file:///etc/passwd"}]}]}),
    ("not a list", {"rules": {"on": "run_failed"}}),
]


@pytest.mark.parametrize(("case", "body"), INVALID, ids=[c for c, _ in INVALID])
async def test_invalid_documents_are_422_and_store_nothing(env: Env, case: str, body: Any) -> None:
    org = uuid.uuid4()
    settings = env.settings.model_copy(
        update={"alerts": env.settings.alerts.model_copy(update={"allow_private_targets": False})}
    )
    async with env.running(settings) as app:
        r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=body)
        assert r.status_code == 422, (case, r.text)
        assert isinstance(r.json()["detail"], list)
    assert await _stored(env) == []


# ------------------------------------------------------------------------------ delivery


def _alert(org: uuid.UUID, job: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    payload = {
        "event_id": str(uuid.uuid4()),
        "kind": "run_failed",
        "org_id": str(org),
        "job_id": str(job),
        "job_name": "nightly_sales",
        "run_id": str(uuid.uuid4()),
        "backfill_id": None,
        "partition_date": "2026-12-04",
        "error": "ZeroDivisionError: division by zero",
        "failed_runs": 0,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    payload.update(overrides)
    return payload


async def _publish(env: Env, payload: dict[str, Any], msg_id: str | None = None) -> None:
    subject = f"{env.prefix}.pipelines.alerts.{payload['kind']}"
    await env.nc.jetstream().publish(
        subject, json.dumps(payload).encode(), headers={"Nats-Msg-Id": msg_id or payload["event_id"]}
    )


async def _deliveries(env: Env, event_id: str) -> list[dict[str, Any]]:
    async with env.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM alert_deliveries WHERE event_id = :id ORDER BY target"), {"id": event_id}
        )
        return [dict(r) for r in rows.mappings()]


async def _settled(env: Env, event_id: str, count: int) -> list[dict[str, Any]]:
    async def done() -> bool:
        rows = await _deliveries(env, event_id)
        return len(rows) == count and all(r["status"] != "retrying" for r in rows)

    await env.eventually(done, within=30, what="all targets handled")
    return await _deliveries(env, event_id)


async def _alerts_settled(env: Env) -> None:
    """Until the alert consumer has nothing pending or waiting for an ack."""
    a = env.settings.alerts

    async def idle() -> bool:
        info = await env.nc.jetstream().consumer_info(a.stream, a.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await env.eventually(idle, within=30, what="alert consumer settled")


async def _dead_letters(env: Env, count: int) -> list[dict[str, Any]]:
    c = env.settings.notifications
    sub = await env.nc.jetstream().pull_subscribe(
        c.alert_dead_letter_subject,
        stream=c.dead_letter_stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        messages: list[Any] = []

        async def fetched() -> bool:
            with suppress(TimeoutError):
                messages.extend(await sub.fetch(count - len(messages), timeout=0.5))
            return len(messages) >= count

        await env.eventually(fetched, within=15, what="dead letters")
        return [json.loads(m.data) for m in messages]
    finally:
        await sub.unsubscribe()


def _verify(request: Any, secret: str) -> None:
    timestamp = request.headers["x-interloper-timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-interloper-signature"] == f"sha256={expected}"


async def test_a_failed_run_sends_one_email_and_one_signed_webhook_per_target(env: Env, smtp_server: Any) -> None:
    smtp = smtp_server()
    receiver = await WebhookReceiver().start()
    org, job = uuid.uuid4(), uuid.uuid4()
    try:
        async with env.running(env.with_smtp(host=smtp.host, port=smtp.port)) as app:
            r = await _call(
                app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=_rules(receiver.url, job)
            )
            assert r.status_code == 200, r.text
            event = _alert(org, job)
            await _publish(env, event)
            rows = await _settled(env, event["event_id"], 3)
            assert [r["status"] for r in rows] == ["sent", "sent", "sent"]
            # A redelivery (another publish of the same event, past JetStream's dedup) sends nothing.
            await _publish(env, event, msg_id=uuid.uuid4().hex)
            await _alerts_settled(env)
            # Another job's failure matches no rule.
            await _publish(env, _alert(org, uuid.uuid4()))
            await _alerts_settled(env)
        [mail] = smtp.recorder.received
        assert mail.recipients == ["ops@example.com"]
        body = mail.message.get_content()
        run_url = f"{PUBLIC_URL}/executions/runs/{event['run_id']}"
        for part in ("nightly_sales", event["run_id"], "2026-12-04", "ZeroDivisionError: division by zero", run_url):
            assert part in body
        assert "nightly_sales" in mail.message["Subject"]
        assert len(receiver.requests) == 2
        signed = next(r for r in receiver.requests if r.path == "/hook")
        _verify(signed, "s3cret-s3cret-s3cret")
        data = json.loads(signed.body)
        assert data["run_id"] == event["run_id"] and data["url"] == run_url and data["error"].startswith("ZeroDiv")
        assert signed.headers["x-interloper-event-id"] == event["event_id"]
        slack = next(r for r in receiver.requests if r.path == "/hook/slack")
        assert "x-interloper-signature" not in slack.headers
        text_ = json.loads(slack.body)["text"]
        assert run_url in text_ and "nightly_sales" in text_ and "ZeroDivisionError" in text_
    finally:
        await receiver.stop()


async def test_a_failing_webhook_is_retried_without_resending_the_email(env: Env, smtp_server: Any) -> None:
    smtp = smtp_server()
    receiver = await WebhookReceiver(statuses=[503, 500]).start()
    org, job = uuid.uuid4(), uuid.uuid4()
    rules = {"rules": [{"on": "run_failed", "email": ["ops@example.com"], "webhooks": [{"url": receiver.url}]}]}
    try:
        async with env.running(env.with_smtp(host=smtp.host, port=smtp.port)) as app:
            r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=rules)
            assert r.status_code == 200
            event = _alert(org, job)
            await _publish(env, event)
            rows = await _settled(env, event["event_id"], 2)
        assert {r["target"]: (r["status"], r["attempts"]) for r in rows} == {
            "email:ops@example.com": ("sent", 1),
            f"webhook:{receiver.url}": ("sent", 3),
        }
        assert len(smtp.recorder.received) == 1
        assert len(receiver.requests) == 3
    finally:
        await receiver.stop()


async def test_a_webhook_failing_for_good_is_dead_lettered(env: Env) -> None:
    receiver = await WebhookReceiver(statuses=[500] * 10).start()
    refused = await WebhookReceiver(statuses=[404]).start()
    org, job = uuid.uuid4(), uuid.uuid4()
    rules = {"rules": [{"on": "run_failed", "webhooks": [{"url": receiver.url}, {"url": refused.url + "/gone"}]}]}
    try:
        async with env.running() as app:
            r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=rules)
            assert r.status_code == 200
            event = _alert(org, job)
            await _publish(env, event)
            rows = await _settled(env, event["event_id"], 2)
            letters = await _dead_letters(env, 2)
        assert sorted((r["status"], r["attempts"]) for r in rows) == [("dead", 1), ("dead", 3)]
        assert len(receiver.requests) == 3 and len(refused.requests) == 1  # a 404 is not retried
        assert {letter["kind"] for letter in letters} == {"alert"}
        assert {letter["target"] for letter in letters} == {"webhook:http://127.0.0.1/..."}
        assert sorted(letter["attempts"] for letter in letters) == [1, 3]
    finally:
        await receiver.stop()
        await refused.stop()


async def test_a_webhook_to_a_private_address_is_refused_at_delivery(env: Env) -> None:
    """Rules saved while private targets were allowed (or a name that now resolves privately)."""
    receiver = await WebhookReceiver().start()
    org, job = uuid.uuid4(), uuid.uuid4()
    url = f"http://{socket.gethostname()}:{receiver.port}/hook"
    rules = {"rules": [{"on": "run_failed", "webhooks": [{"url": url}]}]}
    strict = env.settings.model_copy(
        update={"alerts": env.settings.alerts.model_copy(update={"allow_private_targets": False})}
    )
    try:
        async with env.running(strict) as app:
            r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=rules)
            assert r.status_code == 200, r.text  # a host name: only its addresses can tell
            event = _alert(org, job)
            await _publish(env, event)
            [row] = await _settled(env, event["event_id"], 1)
        assert row["status"] == "dead" and "not public" in row["last_error"]
        assert receiver.requests == []
    finally:
        await receiver.stop()


async def test_an_undecodable_alert_event_is_terminated(env: Env) -> None:
    async with env.running():
        await env.nc.jetstream().publish(f"{env.prefix}.pipelines.alerts.run_failed", b"{not json")
        await _alerts_settled(env)
    async with env.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM alert_deliveries"))).scalar() == 0


async def test_a_stuck_run_alert_matches_only_rules_of_its_threshold(env: Env) -> None:
    receiver = await WebhookReceiver().start()
    org, job = uuid.uuid4(), uuid.uuid4()
    rules = {
        "rules": [{"on": "run_stuck", "stuck_minutes": 30, "webhooks": [{"url": receiver.url, "format": "slack"}]}]
    }
    try:
        async with env.running() as app:
            r = await _call(app, "PUT", f"/api/organisations/{org}/alerts", headers=_headers(org), json=rules)
            assert r.status_code == 200, r.text
            await _publish(env, _alert(org, job, kind="run_stuck", error="", stuck_minutes=60))
            stuck = _alert(org, job, kind="run_stuck", error="", stuck_minutes=30)
            await _publish(env, stuck)
            await _settled(env, stuck["event_id"], 1)
            await _alerts_settled(env)
        [request] = receiver.requests
        text_ = json.loads(request.body)["text"]
        assert "Run stuck for 30 min: nightly_sales" in text_ and stuck["run_id"] in text_
    finally:
        await receiver.stop()
