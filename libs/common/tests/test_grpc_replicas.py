"""Internal gRPC calls over several replicas (InternalClient with a multi-address target and
icp_common.grpc.service_config): round robin over every replica, only SERVING ones (grpc.health.v1
client-side health checking), idempotent calls retried on another replica when theirs is killed,
and the killed one back in rotation once it serves again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from icp_common.grpc import IDEMPOTENT_METHODS, InternalClient, service_config
from icp_common.identity import IdentitySigner

SCRIPT = Path(__file__).with_name("grpc_replica.py")
SECRET = b"grpc-replicas"
SIGNER = IdentitySigner(SECRET, audience="test")
IDEMPOTENT = {"test.Echo": ("Call", "Slow")}


class Replica:
    def __init__(self, port: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(port)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"},
        )
        line = self.readline()
        assert line.startswith("READY "), line
        self.port = int(line.split()[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.kill()


async def invoke(client: InternalClient, method: str, body: bytes = b"") -> int:
    call = client.channel.unary_unary(f"/test.Echo/{method}")
    return int(await call(body, metadata=client.metadata(), timeout=10))


async def wait_for_line(replica: Replica, wanted: str) -> None:
    while (line := await asyncio.to_thread(replica.readline)) != wanted:
        assert line, f"replica {replica.pid} exited before printing {wanted}"


def test_every_read_of_the_services_is_retried_and_nothing_else() -> None:
    config = service_config()
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": ""}
    (method,) = config["methodConfig"]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    retried = {(n["service"], n["method"]) for n in method["name"]}
    from icp_protos.interloper.identity.v1 import identity_pb2
    from icp_protos.interloper.pipelines.v1 import pipelines_pb2

    for module in (identity_pb2, pipelines_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for rpc in service.methods:
                read = rpc.name.startswith(("Get", "List")) or rpc.name == "Authenticate"
                assert ((service.full_name, rpc.name) in retried) == read, rpc.full_name
    assert set(IDEMPOTENT_METHODS) == {
        "interloper.identity.v1.IdentityService",
        "interloper.pipelines.v1.PipelinesService",
    }


async def test_calls_spread_over_the_replicas_and_a_killed_one_fails_no_idempotent_call(
    replicas: list[Replica],
) -> None:
    a, b = Replica(), Replica()
    replicas += [a, b]
    client = InternalClient(f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}", SECRET, SIGNER, idempotent=IDEMPOTENT)
    try:
        assert {await invoke(client, "Call") for _ in range(10)} == {a.pid, b.pid}

        # Reads and writes in flight on both replicas when b is killed: b's reads are answered by
        # a (retried), b's writes fail (UNAVAILABLE: b may have done them), a's are unaffected.
        reads = [asyncio.create_task(invoke(client, "Slow")) for _ in range(4)]
        await wait_for_line(b, "SLOW")
        writes = [asyncio.create_task(invoke(client, "Write")) for _ in range(2)]
        await wait_for_line(b, "WRITE")
        b.kill()
        assert await asyncio.gather(*reads) == [a.pid] * 4
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert [o.code() for o in failed] == [grpc.StatusCode.UNAVAILABLE]
        assert [o for o in outcomes if not isinstance(o, Exception)] == [a.pid]

        # Out of rotation: every call goes to a.
        assert {await invoke(client, "Call") for _ in range(10)} == {a.pid}

        # b back on its port: in rotation again once connected and SERVING.
        again = Replica(b.port)
        replicas.append(again)
        seen: set[int] = set()
        while again.pid not in seen:
            seen.add(await invoke(client, "Call"))
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def test_a_replica_not_serving_gets_no_calls(replicas: list[Replica]) -> None:
    a, b = Replica(), Replica()
    replicas += [a, b]
    client = InternalClient(f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}", SECRET, SIGNER, idempotent=IDEMPOTENT)
    try:
        assert {await invoke(client, "Call") for _ in range(10)} == {a.pid, b.pid}
        while await invoke(client, "Drain", str(b.pid).encode()) != b.pid:
            pass
        # The health watch reaches the client; from then on b gets nothing.
        recent: list[int] = []
        while recent[-10:] != [a.pid] * 10:
            recent.append(await invoke(client, "Call"))
        assert {await invoke(client, "Call") for _ in range(20)} == {a.pid}
    finally:
        await client.close()


def test_servers_accept_the_keepalive_pings_their_clients_send() -> None:
    """Every channel keeps its grpc.health.v1 Watch open and pings every KEEPALIVE_MS; servers with
    grpc's default policy (pings at most every 5 min, none without calls) answered GOAWAY
    "too_many_pings" and the channel reconnected (seen in CI's gateway log)."""
    from icp_common.grpc import KEEPALIVE_MS, channel_options, server_options

    client = dict(channel_options())
    server = dict(server_options())
    assert client["grpc.keepalive_time_ms"] == KEEPALIVE_MS
    assert server["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.http2.min_ping_interval_without_data_ms"] < client["grpc.keepalive_time_ms"]
