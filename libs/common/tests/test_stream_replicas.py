"""JetStream streams take their replicas from INTERLOPER_NATS_STREAM_REPLICAS (the Kubernetes
`nats-cluster` component sets 3), on a real 3-server cluster: created with 3 replicas, and a
stream created before with one is scaled up when a process ensures it."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.api import StreamConfig

from icp_common import nats as nats_helpers
from icp_common.settings import NatsSettings
from icp_stack.infra.nats import nats_server_binary
from icp_stack.infra.process import http_ok
from icp_stack.ports import free_ports


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[str], list[int]]]:
    """Three nats-servers with JetStream in one cluster; yields their client URLs."""
    ports = free_ports(9)
    clients, routes, monitors = ports[0:3], ports[3:6], ports[6:9]
    all_routes = ",".join(f"nats://127.0.0.1:{r}" for r in routes)
    procs = []
    try:
        for i in range(3):
            argv = [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(clients[i]), "-m", str(monitors[i])]
            argv += ["-n", f"n{i}", "-js", "-sd", str(tmp_path / f"n{i}"), "--cluster_name", "icp-test"]
            argv += ["--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes", all_routes]
            log = (tmp_path / f"n{i}.log").open("wb")
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        yield [f"nats://127.0.0.1:{c}" for c in clients], monitors
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


async def _wait_for_meta_leader(monitors: list[int]) -> None:
    # /healthz answers ok once JetStream's meta group has a leader and the server is current.
    for _ in range(300):
        if all(http_ok(f"http://127.0.0.1:{m}/healthz") for m in monitors):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cluster elected no JetStream leader")


async def test_streams_get_the_configured_replicas_on_a_cluster(cluster: tuple[list[str], list[int]]) -> None:
    urls, monitors = cluster
    await _wait_for_meta_leader(monitors)
    nc = await nats_helpers.connect(NatsSettings(url=urls[0], stream_replicas=3), "replicas-test")
    try:
        js = nc.jetstream()
        fresh = nats_helpers.StreamSpec(f"R{uuid.uuid4().hex[:8].upper()}", [f"r{uuid.uuid4().hex[:8]}.>"])
        await nats_helpers.ensure_stream(nc, fresh)
        info = await js.stream_info(fresh.name)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # the leader + 2 followers

        # A stream made by an older release (one replica) is scaled up by the next ensure.
        older = nats_helpers.StreamSpec(f"R{uuid.uuid4().hex[:8].upper()}", [f"r{uuid.uuid4().hex[:8]}.>"])
        await js.add_stream(StreamConfig(name=older.name, subjects=older.subjects, num_replicas=1))
        await nats_helpers.ensure_stream(nc, older)
        assert (await js.stream_info(older.name)).config.num_replicas == 3

        # An explicit count wins over the connection's setting.
        single = nats_helpers.StreamSpec(f"R{uuid.uuid4().hex[:8].upper()}", [f"r{uuid.uuid4().hex[:8]}.>"])
        await nats_helpers.ensure_stream(nc, single, replicas=1)
        assert (await js.stream_info(single.name)).config.num_replicas == 1
    finally:
        await nc.close()


def test_stream_replicas_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOPER_NATS_STREAM_REPLICAS", raising=False)
    assert NatsSettings().stream_replicas == 1  # one server (local stack, compose, dev overlay)
    monkeypatch.setenv("INTERLOPER_NATS_STREAM_REPLICAS", "3")
    assert NatsSettings().stream_replicas == 3
    monkeypatch.setenv("INTERLOPER_NATS_STREAM_REPLICAS", "0")
    with pytest.raises(ValueError):
        NatsSettings()
