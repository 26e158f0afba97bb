"""Stream limits reach nats-server: the REALTIME resume window is bounded by size as well as age
(the soak's nats-server growth was that stream's unbounded file store)."""

from __future__ import annotations

import uuid

from nats.js.api import StreamConfig

from icp_common import nats as nats_helpers
from icp_common.settings import NatsSettings
from icp_common.streams import REALTIME, REALTIME_MAX_BYTES, REALTIME_MAX_PER_SUBJECT


async def test_realtime_stream_is_bounded_by_size_and_per_subject(nats_settings: NatsSettings) -> None:
    nc = await nats_helpers.connect(nats_settings, "streams-test")
    try:
        # A stream created before the size limits existed (age only) is updated in place.
        spec = nats_helpers.StreamSpec(f"RT{uuid.uuid4().hex[:8].upper()}", [f"rt{uuid.uuid4().hex[:8]}.>"])
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=spec.name, subjects=spec.subjects, max_age=REALTIME.max_age_seconds))
        bounded = nats_helpers.StreamSpec(
            spec.name,
            spec.subjects,
            max_age_seconds=REALTIME.max_age_seconds,
            max_bytes=REALTIME.max_bytes,
            max_msgs_per_subject=3,
        )
        await nats_helpers.ensure_stream(nc, bounded)
        config = (await js.stream_info(spec.name)).config
        assert (config.max_bytes, config.max_msgs_per_subject) == (REALTIME_MAX_BYTES, 3)

        # The per-subject limit drops a subject's oldest frames, not another subject's.
        prefix = spec.subjects[0].removesuffix(".>")
        for i in range(5):
            await js.publish(f"{prefix}.busy.runs", str(i).encode())
        await js.publish(f"{prefix}.quiet.runs", b"q")
        state = (await js.stream_info(spec.name, subjects_filter=">")).state
        assert state.subjects == {f"{prefix}.busy.runs": 3, f"{prefix}.quiet.runs": 1}
        assert (await js.get_last_msg(spec.name, f"{prefix}.busy.runs")).data == b"4"
        await js.delete_stream(spec.name)

        # REALTIME itself carries both limits.
        await nats_helpers.ensure_stream(nc, REALTIME)
        config = (await js.stream_info(REALTIME.name)).config
        assert (config.max_bytes, config.max_msgs_per_subject) == (REALTIME_MAX_BYTES, REALTIME_MAX_PER_SUBJECT)
        assert config.max_age == REALTIME.max_age_seconds
    finally:
        await nc.close()
