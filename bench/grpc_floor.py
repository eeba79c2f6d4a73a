"""What grpc.aio itself costs the server per proxy: the floor under `reconciler serve`'s xDS figures.

A bare grpc.aio server with the same gRPC options as `reconciler serve` (bench/xds_memory.py's
FloorServer, on a loop thread of this process) answers every DiscoveryRequest that carries no response nonce with a canned DiscoveryResponse of
`--resources` resources of `--bytes` bytes each, and takes every other request (an ACK) without
answering. N simulated proxies, each on its own TCP connection and driven from client processes
as in bench/xds_scale.py, open a stream, send `--responses` initial requests (one per type), ACK
every response and close. The server's CPU seconds for the whole exchange, divided by N, is what
gRPC and asyncio cost per proxy before any of the control plane's own work: compare it with
`cpu_connect_s / N` of bench/xds_scale.py, whose proxies exchange 3 responses and 6 requests each
when they connect (4 responses and 5 requests in its global push).

Usage: .venv/bin/python bench/grpc_floor.py [--proxies 1000 3000] [--responses 3] [--resources 10] [--bytes 300]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
METHOD = f"/{SERVICE}/StreamAggregatedResources"


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _proxies(port: int, ids: list[int], responses: int) -> None:
    import grpc
    from envoy.service.discovery.v3 import discovery_pb2

    async def proxy(index: int) -> None:
        # A channel of its own (local subchannel pool, distinct args): one TCP connection per proxy.
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1), ("bench.proxy", index)])
        call = channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )()
        for k in range(responses):
            await call.write(discovery_pb2.DiscoveryRequest(type_url=f"type-{k}"))
        seen = 0
        async for response in call:
            await call.write(discovery_pb2.DiscoveryRequest(type_url=response.type_url, response_nonce=response.nonce))
            seen += 1
            if seen == responses:
                break
        await call.done_writing()
        call.cancel()
        await channel.close()

    await asyncio.gather(*(proxy(i) for i in ids))


def _client(port: int, ids: list[int], responses: int) -> None:
    _raise_nofile()
    asyncio.run(_proxies(port, ids, responses))


def measure(proxies: int, responses: int, resources: int, size: int) -> dict[str, Any]:
    from google.protobuf import any_pb2
    from xds_memory import FloorServer, Loop

    _raise_nofile()
    canned = [any_pb2.Any(type_url="type.googleapis.com/bench", value=os.urandom(size)) for _ in range(resources)]
    loop = Loop()
    server = FloorServer(loop, [], answer=True, resources=canned)
    ctx = mp.get_context("spawn")  # gRPC must not be forked
    processes = max(1, min(4, proxies // 1000))
    clients = [ctx.Process(target=_client, args=(server.port, list(range(k, proxies, processes)), responses)) for k in range(processes)]
    # The server is this process's loop thread; the clients run in processes of their own, so
    # this process's CPU is the server's (and its own idle wait).
    cpu0, started = time.process_time(), time.perf_counter()
    for c in clients:
        c.start()
    for c in clients:
        c.join(600)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    server.stop()
    loop.close()
    failed = [c.exitcode for c in clients if c.exitcode != 0]
    return {
        "proxies": proxies,
        "responses_per_proxy": responses,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_proxy": round(cpu / proxies * 1000, 3),
        "wall_s": round(wall, 2),
        "clients_failed": failed,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--responses", type=int, default=3, help="responses (and ACKs) per proxy")
    ap.add_argument("--resources", type=int, default=10, help="resources per response")
    ap.add_argument("--bytes", type=int, default=300, help="bytes per resource")
    args = ap.parse_args()
    failed = False
    for n in args.proxies:
        result = measure(n, args.responses, args.resources, args.bytes)
        print(result, flush=True)
        failed = failed or bool(result["clients_failed"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
