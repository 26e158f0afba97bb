"""nats-server's own statistics in Prometheus format, for deployments without an exporter.

Kubernetes and compose run the standard prometheus-nats-exporter beside nats-server; the local
stack has no containers, so one of our processes (the pipelines scheduler there) reads the
server's monitoring port (`-m`) on each sample and translates `/varz` and `/jsz`. The `/varz`
gauges keep the exporter's names (`gnatsd_varz_<field>{server_id=<monitor URL>}`), so the same
dashboards and alert rules read either source; JetStream totals, streams and consumers are
`icp_nats_jetstream_*`."""

from __future__ import annotations

from typing import Any

import httpx

from .metrics import SAMPLED, Probe

# /varz fields exported (as the exporter does: gauges named after the field).
VARZ_FIELDS = (
    "connections",
    "total_connections",
    "subscriptions",
    "slow_consumers",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "mem",
    "cpu",
    "routes",
    "remotes",
)
for _field in VARZ_FIELDS:
    SAMPLED.define(f"gnatsd_varz_{_field}", "gauge", f"nats-server /varz {_field}", ["server_id"])

UP = SAMPLED.define("icp_nats_monitor_up", "gauge", "1 if nats-server's monitoring endpoint answered", ["server_id"])
JS_TOTALS = {
    name: SAMPLED.define(f"icp_nats_jetstream_{name}", "gauge", f"JetStream {name} on the server (/jsz)", ["server_id"])
    for name in ("streams", "consumers", "messages", "bytes", "memory", "storage")
}
JS_API_ERRORS = SAMPLED.define(
    "icp_nats_jetstream_api_errors",
    "gauge",
    "JetStream API requests that failed since the server started",
    ["server_id"],
)
STREAM_MESSAGES = SAMPLED.define(
    "icp_nats_jetstream_stream_messages", "gauge", "Messages stored in the stream", ["server_id", "stream"]
)
STREAM_BYTES = SAMPLED.define(
    "icp_nats_jetstream_stream_bytes", "gauge", "Bytes stored in the stream", ["server_id", "stream"]
)
CONSUMER_PENDING = SAMPLED.define(
    "icp_nats_jetstream_consumer_pending",
    "gauge",
    "Messages not yet delivered to the consumer (num_pending)",
    ["server_id", "stream", "consumer"],
)
CONSUMER_ACK_PENDING = SAMPLED.define(
    "icp_nats_jetstream_consumer_ack_pending",
    "gauge",
    "Messages delivered to the consumer, not yet acknowledged",
    ["server_id", "stream", "consumer"],
)
CONSUMER_REDELIVERED = SAMPLED.define(
    "icp_nats_jetstream_consumer_redelivered",
    "gauge",
    "Messages redelivered to the consumer, not yet acknowledged (num_redelivered)",
    ["server_id", "stream", "consumer"],
)


def record(server: str, varz: dict[str, Any], jsz: dict[str, Any]) -> None:
    """Set the sampled families from one /varz and one /jsz answer of `server`."""
    for name in VARZ_FIELDS:
        value = varz.get(name)
        if isinstance(value, int | float):
            SAMPLED.set(f"gnatsd_varz_{name}", (server,), value)
    for name, family in JS_TOTALS.items():
        value = jsz.get(name)
        if isinstance(value, int | float):
            SAMPLED.set(family, (server,), value)
    SAMPLED.set(JS_API_ERRORS, (server,), (jsz.get("api") or {}).get("errors", 0))
    streams: set[str] = set()
    consumers: set[tuple[str, str]] = set()
    for account in jsz.get("account_details") or ():
        for stream in account.get("stream_detail") or ():
            name = str(stream.get("name"))
            streams.add(name)
            state = stream.get("state") or {}
            SAMPLED.set(STREAM_MESSAGES, (server, name), state.get("messages", 0))
            SAMPLED.set(STREAM_BYTES, (server, name), state.get("bytes", 0))
            for consumer in stream.get("consumer_detail") or ():
                key = (server, name, str(consumer.get("name")))
                consumers.add(key[1:])
                SAMPLED.set(CONSUMER_PENDING, key, consumer.get("num_pending", 0))
                SAMPLED.set(CONSUMER_ACK_PENDING, key, consumer.get("num_ack_pending", 0))
                SAMPLED.set(CONSUMER_REDELIVERED, key, consumer.get("num_redelivered", 0))
    # Ephemeral consumers (the gateway's realtime readers) come and go: drop the ones gone.
    for family in (STREAM_MESSAGES, STREAM_BYTES):
        SAMPLED.forget(family, lambda key: key[0] != server or key[1] in streams)
    for family in (CONSUMER_PENDING, CONSUMER_ACK_PENDING, CONSUMER_REDELIVERED):
        SAMPLED.forget(family, lambda key: key[0] != server or key[1:] in consumers)


def probe(monitor_url: str) -> Probe:
    base = monitor_url.rstrip("/")

    async def sample() -> None:
        try:
            async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
                varz = (await client.get(f"{base}/varz")).raise_for_status().json()
                jsz = (
                    (
                        await client.get(
                            f"{base}/jsz", params={"accounts": "true", "streams": "true", "consumers": "true"}
                        )
                    )
                    .raise_for_status()
                    .json()
                )
        except Exception:
            SAMPLED.set(UP, (base,), 0)
            raise
        SAMPLED.set(UP, (base,), 1)
        record(base, varz, jsz)

    return sample
