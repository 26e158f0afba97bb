"""One replica of a tiny gRPC service (``test.Echo``) served by icp_common.grpc.start_server, run as
its own process by test_grpc_replicas.py so it can be killed: every method answers the process's
pid; ``Slow``/``Write`` print ``SLOW``/``WRITE`` when they start and answer after a second;
``Drain`` with its pid as the request sets its grpc.health.v1 status to NOT_SERVING. Prints ``READY <port>`` once serving.
Usage: python grpc_replica.py <port|0>"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from grpc_health.v1 import health_pb2

from icp_common.grpc import start_server
from icp_common.identity import IdentitySigner

SECRET = b"grpc-replicas"
SIGNER = IdentitySigner(SECRET, audience="test")


async def main(port: int) -> None:
    pid = str(os.getpid()).encode()
    health_box: list[object] = []

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return pid

    def slow(label: str) -> object:
        async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            print(label, flush=True)
            await asyncio.sleep(1.0)
            return pid

        return handler

    async def drain(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == pid:  # only the replica named (round robin may send it to another)
            await health_box[0].set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # type: ignore[attr-defined]
        return pid

    def register(server: grpc.aio.Server) -> None:
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(call),
            "Slow": grpc.unary_unary_rpc_method_handler(slow("SLOW")),
            "Write": grpc.unary_unary_rpc_method_handler(slow("WRITE")),
            "Drain": grpc.unary_unary_rpc_method_handler(drain),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))

    server, health, bound = await start_server(port, register, secret=SECRET, signer=SIGNER)
    health_box.append(health)
    print(f"READY {bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
