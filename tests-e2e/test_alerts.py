"""Failure alerts end to end, through Traefik and the gateway (issue 19.2): an admin configures
`/api/organisations/{id}/alerts`, a run fails, and the notifications service sends one e-mail to
the stack's mail catcher and one signed webhook to a receiver started by the test; with the
notifications process killed while the webhook request is in flight, it is still one e-mail and
one acknowledged webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import nats

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle
from icp_testing.webhooks import WebhookReceiver

# Set before any stack starts (the launcher passes its environment on): the demo catalog, webhooks
# to the test's receiver on 127.0.0.1, and a short ack wait so a message of a killed process is
# redelivered soon.
os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))
os.environ.setdefault("INTERLOPER_ALERTS_ALLOW_PRIVATE_TARGETS", "true")
os.environ.setdefault("INTERLOPER_NOTIFICATIONS_ACK_WAIT_SECONDS", "15")

SECRET = "e2e-webhook-secret-0123456789"


async def _org_admin(base_url: str, name: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
    email = f"{name}-{uuid.uuid4().hex[:8]}@alerts.example"
    assert (await client.get("/api/auth/dev-login", params={"email": email})).status_code == 302
    r = await client.post("/api/organisations", json={"name": f"Alerts {name}"})
    assert r.status_code == 201, r.text
    me = (await client.get("/api/auth/me")).json()
    return client, me["organisation"]["id"]


async def _failing_job(client: httpx.AsyncClient) -> str:
    destination = (
        await client.post(
            "/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "a"}}
        )
    ).json()
    source = await client.post(
        "/api/sources/",
        json={
            "key": "demo_live",
            "name": "Failing",
            "config": {"seconds": 0.2, "steps": 1, "fail_after": 1},
            "destination_ids": [destination["id"]],
        },
    )
    assert source.status_code == 200, source.text
    job = await client.post(
        "/api/jobs/", json={"name": "nightly_fail", "cron": "0 4 * * *", "source_ids": [source.json()["id"]]}
    )
    assert job.status_code == 200, job.text
    return str(job.json()["id"])


def _mails(stack: StackHandle, recipient: str) -> list[EmailMessage]:
    found = []
    for path in sorted((stack.data_dir / "mail").glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        if message["To"] == recipient:
            found.append(message)
    return found


async def _eventually(probe: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _alerts_settled(stack: StackHandle) -> None:
    nc = await nats.connect(stack.nats_url(), connect_timeout=5)
    try:
        deadline = time.monotonic() + 120
        while True:
            info = await nc.jetstream().consumer_info("PIPELINES", "notifications-alerts")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            assert time.monotonic() < deadline, "the alert event was never acknowledged"
            await asyncio.sleep(0.5)
    finally:
        await nc.close()


def _verify(request: Any) -> dict[str, Any]:
    timestamp = request.headers["x-interloper-timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-interloper-signature"] == f"sha256={mac}"
    return json.loads(request.body)  # type: ignore[no-any-return]


async def _configure(client: httpx.AsyncClient, org: str, recipient: str, receiver: WebhookReceiver) -> None:
    rules = {
        "rules": [
            {
                "on": "run_failed",
                "email": [recipient],
                "webhooks": [{"url": receiver.url, "format": "json", "secret": SECRET}],
            }
        ]
    }
    r = await client.put(f"/api/organisations/{org}/alerts", json=rules)
    assert r.status_code == 200, r.text
    assert r.json()["rules"][0]["webhooks"][0]["secret_set"] is True
    assert (await client.get(f"/api/organisations/{org}/alerts")).json() == r.json()


async def test_alert_rules_are_org_scoped_and_refuse_non_http_targets_through_the_edge(base_url: str) -> None:
    admin, org = await _org_admin(base_url, "edge")
    outsider, _ = await _org_admin(base_url, "outsider")
    try:
        r = await outsider.get(f"/api/organisations/{org}/alerts")
        assert r.status_code == 404  # another organisation's rules: not found
        async with httpx.AsyncClient(base_url=base_url) as anonymous:
            assert (await anonymous.get(f"/api/organisations/{org}/alerts")).status_code == 401
        bad = {"rules": [{"on": "run_failed", "webhooks": [{"url": "file:///etc/passwd"}]}]}
        r = await admin.put(f"/api/organisations/{org}/alerts", json=bad)
        assert r.status_code == 422 and "refused" in r.text
        assert (await admin.get(f"/api/organisations/{org}/alerts")).json() == {"rules": []}
    finally:
        await admin.aclose()
        await outsider.aclose()


async def test_a_failed_run_sends_one_email_and_one_signed_webhook(base_url: str, stack: StackHandle) -> None:
    client, org = await _org_admin(base_url, "alert")
    recipient = f"ops-{uuid.uuid4().hex[:8]}@alerts.example"
    receiver = await WebhookReceiver().start()
    try:
        await _configure(client, org, recipient, receiver)
        job = await _failing_job(client)
        r = await client.post(f"/api/jobs/{job}/run")
        assert r.status_code == 200, r.text
        run_id = r.json()["run_id"]
        [mail] = await _eventually(lambda: _mails(stack, recipient), 120, "the alert e-mail")
        await receiver.wait(1, within=120)
        await _alerts_settled(stack)
        body = mail.get_content()
        assert "nightly_fail" in body and run_id in body and "Demo failure after step 1" in body
        assert f"/executions/runs/{run_id}" in body
        [request] = receiver.requests
        data = _verify(request)
        assert data["run_id"] == run_id and data["job"]["name"] == "nightly_fail"
        assert data["url"].endswith(f"/executions/runs/{run_id}") and "Demo failure" in data["error"]
        assert len(_mails(stack, recipient)) == 1
    finally:
        await receiver.stop()
        await client.aclose()


async def test_notifications_killed_during_delivery_still_one_email_and_one_webhook(
    base_url: str, stack: StackHandle
) -> None:
    """kill -9 of notifications while the webhook request is in flight (the e-mail already sent):
    after the restart the event is redelivered; the e-mail is not sent again (its row says sent)
    and the webhook is sent again and acknowledged once. The unanswered first request carries the
    same X-Interloper-Event-Id, so a receiver can tell it is the same alert."""
    client, org = await _org_admin(base_url, "killed")
    recipient = f"ops-{uuid.uuid4().hex[:8]}@alerts.example"
    receiver = await WebhookReceiver(hold_first=True).start()
    try:
        await _configure(client, org, recipient, receiver)
        job = await _failing_job(client)
        r = await client.post(f"/api/jobs/{job}/run")
        assert r.status_code == 200, r.text
        run_id = r.json()["run_id"]
        await receiver.wait(1, within=120)  # held: notifications is mid-request
        old = stack.kill_component("notifications")
        stack.wait_component_ready("notifications", not_pid=old)
        await _eventually(lambda: receiver.answered, 120, "the webhook after the restart")
        await _alerts_settled(stack)
        assert len(_mails(stack, recipient)) == 1
        [answered] = receiver.answered
        assert len(receiver.requests) >= 2  # the held request died with the process, then a retry
        assert _verify(answered)["run_id"] == run_id
        assert {r.headers["x-interloper-event-id"] for r in receiver.requests} == {
            answered.headers["x-interloper-event-id"]
        }
    finally:
        receiver.release.set()
        await receiver.stop()
        await client.aclose()


async def test_nats_killed_while_a_failure_is_alerted_still_one_email_and_one_webhook(
    base_url: str, stack: StackHandle
) -> None:
    """kill -9 of nats-server while the failing run's alert is on its way (outbox relay, stream,
    consumer, or the webhook being sent): after NATS is back, one e-mail and one webhook."""
    client, org = await _org_admin(base_url, "natskill")
    recipient = f"ops-{uuid.uuid4().hex[:8]}@alerts.example"
    receiver = await WebhookReceiver().start()
    try:
        await _configure(client, org, recipient, receiver)
        job = await _failing_job(client)
        r = await client.post(f"/api/jobs/{job}/run")
        assert r.status_code == 200, r.text
        run_id = r.json()["run_id"]

        async def failed() -> bool:
            return (await client.get(f"/api/runs/{run_id}")).json()["status"] == "failed"

        deadline = time.monotonic() + 120
        while not await failed():
            assert time.monotonic() < deadline, "the run did not fail"
            await asyncio.sleep(0.1)
        old = stack.kill_component("nats")
        stack.wait_component_ready("nats", not_pid=old)
        await _eventually(lambda: _mails(stack, recipient), 120, "the alert e-mail")
        await _eventually(lambda: receiver.answered, 120, "the webhook")
        await _alerts_settled(stack)
        assert len(_mails(stack, recipient)) == 1
        assert len(receiver.answered) == 1 and _verify(receiver.answered[0])["run_id"] == run_id
    finally:
        await receiver.stop()
        await client.aclose()
