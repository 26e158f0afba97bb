"""The invitation event reaches NATS JetStream through the outbox relay, with its message id."""

from __future__ import annotations

import asyncio
import json

from nats.js.api import ConsumerConfig, DeliverPolicy

from icp_common.outbox import OutboxRelay
from icp_identity.db import SERVICE, outbox_table


async def test_invitation_event_is_published_to_jetstream(clients, engine, nats_client, outbox):
    js = nats_client.jetstream()
    sub = await js.pull_subscribe(
        "identity.invitation.created", config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    )
    r = await clients.owner.post("/api/organisations/invite", json={"email": "bob@example.com", "role": "viewer"})
    assert r.status_code == 201
    [row] = await outbox("identity.invitation.created")
    relay = OutboxRelay(engine, nats_client, outbox_table, SERVICE, poll_interval=0.05)
    await relay.start()
    try:
        messages = await sub.fetch(1, timeout=10)
        for _ in range(100):  # published rows leave the outbox
            if not await outbox():
                break
            await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await sub.unsubscribe()
    [message] = messages
    await message.ack()
    payload = json.loads(message.data)
    assert payload == row["payload"]
    assert payload["invitation_id"] == r.json()["id"]
    assert message.headers["Nats-Msg-Id"] == row["msg_id"] == payload["event_id"]
    assert await outbox() == []
