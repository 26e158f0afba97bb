"""Stream limits reach nats-server: the REALTIME resume window is bounded by size as well as age
(the soak's nats-server growth was that stream's unbounded file store)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from nats.js.api import AckPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from icp_common import nats as nats_helpers
from icp_common.contracts import HINT_SUBJECTS
from icp_common.nats import DurableSpec
from icp_common.settings import NatsSettings
from icp_common.streams import (
    AUDIT,
    AUDIT_DURABLE,
    PIPELINES,
    REALTIME,
    REALTIME_MAX_BYTES,
)


async def test_realtime_stream_is_bounded_by_size_and_age_not_per_subject(nats_settings: NatsSettings) -> None:
    nc = await nats_helpers.connect(nats_settings, "streams-test")
    js = nc.jetstream()
    try:
        # A stream of an earlier version (age only, or with a per-subject limit) is updated in place:
        # bounded by size, the per-subject limit lifted (nats-server loads a whole block per store
        # to enforce one).
        await nats_helpers.ensure_stream(nc, REALTIME)
        earlier = dataclasses.replace(
            (await js.stream_info(REALTIME.name)).config, max_bytes=-1, max_msgs_per_subject=10_000
        )
        await js.update_stream(earlier)
        await nats_helpers.ensure_stream(nc, REALTIME)
        config = (await js.stream_info(REALTIME.name)).config
        assert (config.max_bytes, config.max_msgs_per_subject) == (REALTIME_MAX_BYTES, -1)
        assert config.max_age == REALTIME.max_age_seconds
    finally:
        await nc.close()


async def test_an_interest_stream_keeps_its_messages_for_its_durable_until_acknowledged(
    nats_settings: NatsSettings,
) -> None:
    """AUDIT's shape: a stream created by an earlier version (limits retention, entries stored and
    not yet read) becomes an interest stream with its durable on the next ensure; the entries
    already there and those published before any consumer process reads them reach the durable,
    and each leaves the stream once acknowledged."""
    nc = await nats_helpers.connect(nats_settings, "streams-test")
    js = nc.jetstream()
    name, prefix = f"AU{uuid.uuid4().hex[:8].upper()}", f"au{uuid.uuid4().hex[:8]}"
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[f"{prefix}.>"], max_age=3600))
        await js.publish(f"{prefix}.org1", b"before")
        durable = DurableSpec(f"{prefix}-reader", f"{prefix}.>")
        spec = nats_helpers.StreamSpec(name, [f"{prefix}.>"], retention="interest", durables=(durable,))
        await nats_helpers.ensure_stream(nc, spec)
        await nats_helpers.ensure_stream(nc, spec)  # again, as every replica does: unchanged
        assert (await js.stream_info(name)).config.retention == RetentionPolicy.INTEREST
        await js.publish(f"{prefix}.org2", b"after")
        assert (await js.stream_info(name)).state.messages == 2

        reader = await js.pull_subscribe_bind(durable=durable.name, stream=name)
        messages = await reader.fetch(2, timeout=5)
        assert [m.data for m in messages] == [b"before", b"after"]
        await messages[0].ack_sync()
        assert (await js.stream_info(name)).state.messages == 1  # the unacknowledged one stays
        await messages[1].ack_sync()
        assert (await js.stream_info(name)).state.messages == 0
    finally:
        await js.delete_stream(name)
        await nc.close()


async def test_audit_is_an_interest_stream_with_identitys_durable_and_hints_are_in_no_stream(
    nats_settings: NatsSettings,
) -> None:
    nc = await nats_helpers.connect(nats_settings, "streams-test")
    js = nc.jetstream()
    try:
        await nats_helpers.ensure_stream(nc, AUDIT)
        assert (await js.stream_info(AUDIT.name)).config.retention == RetentionPolicy.INTEREST
        durable = (await js.consumer_info(AUDIT.name, AUDIT_DURABLE.name)).config
        assert (durable.filter_subject, durable.ack_policy) == ("audit.>", AckPolicy.EXPLICIT)

        await nats_helpers.ensure_stream(nc, PIPELINES)
        assert await js.find_stream_name_by_subject("pipelines.alerts.run_failed") == PIPELINES.name
        for hint in HINT_SUBJECTS:  # a stream holding them would store every core publish too
            with pytest.raises(NotFoundError):
                await js.find_stream_name_by_subject(hint)
    finally:
        await nc.close()
