"""Server CPU per HDS health report: reconciler/xds/hds.py's HdsServer against a bare grpc.aio reader.

`--streams` clients (one connection each) open StreamHealthCheck, get a specifier, then send
`--reports` EndpointHealthResponses each, spaced `--gap` seconds apart (jittered). The server
runs in its own process; its CPU (os.times) over the reports after the first round, divided by
their number, is the figure. `bare` reads and drops each message (the grpc.aio floor); `hds` is
HdsServer with callbacks that parse each report as the control plane does (report_of) and keep
it. A real sidecar reports every 5 s: a large `--gap` is the realistic pace, a small one lets
gRPC batch messages and shows a lower floor.

Usage: .venv/bin/python bench/hds_report_cost.py [--streams 500] [--reports 12] [--gap 1.0] [bare hds ...]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def _serve(kind: str, streams: int, reports: int, port_q: Queue[int], done_q: Queue[tuple[float, int]]) -> None:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

    from reconciler.controlplane.health import report_of
    from reconciler.xds.hds import HdsServer, add_hds_server

    got = [0]
    spec = hds_pb2.HealthCheckSpecifier(cluster_health_checks=[hds_pb2.ClusterHealthCheck(cluster_name="kuma:envoy:admin")])
    spec.interval.FromSeconds(5)

    class Callbacks:
        health: dict[str, Any] = {}

        async def on_hds_open(self, node: base_pb2.Node) -> str:
            return str(node.id)

        def hds_specifier(self, node_id: str, node: base_pb2.Node) -> Any:
            return spec

        def on_health(self, node_id: str, response: Any) -> None:
            got[0] += 1
            report = report_of(response)
            if self.health.get(node_id) != report:
                self.health[node_id] = report

        def on_hds_close(self, node_id: str) -> None:
            self.health.pop(node_id, None)

    class Bare(hds_pb2_grpc.HealthDiscoveryServiceServicer):  # type: ignore[misc]
        async def StreamHealthCheck(self, request_iterator: Any, context: Any) -> None:
            await context.read()
            await context.write(spec)
            while await context.read() is not grpc.aio.EOF:
                got[0] += 1

    server = grpc.aio.server()
    if kind == "hds":
        add_hds_server(server, HdsServer(Callbacks(), refresh_interval=10))
    else:
        hds_pb2_grpc.add_HealthDiscoveryServiceServicer_to_server(Bare(), server)
    port_q.put(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    while got[0] < streams:  # the first round: streams still opening
        await asyncio.sleep(0.01)
    cpu0, got0 = _cpu(), got[0]
    while got[0] < streams * reports:
        await asyncio.sleep(0.01)
    done_q.put(((_cpu() - cpu0) / (got[0] - got0) * 1e6, got[0] - got0))
    await asyncio.get_running_loop().run_in_executor(None, port_q.get)  # the clients have gone: nothing to cancel
    await server.stop(0)


def _server(kind: str, streams: int, reports: int, port_q: Queue[int], done_q: Queue[tuple[float, int]]) -> None:
    asyncio.run(_serve(kind, streams, reports, port_q, done_q))


async def _clients(port: int, streams: int, reports: int, gap: float) -> None:
    import grpc
    from _hds_clients import _healthy
    from envoy.config.core.v3 import base_pb2
    from envoy.service.health.v3 import hds_pb2, hds_pb2_grpc

    message = _healthy(("kuma:envoy:admin",))

    async def one(i: int) -> None:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1), ("bench.proxy", i)])
        call = hds_pb2_grpc.HealthDiscoveryServiceStub(channel).StreamHealthCheck()
        hello = hds_pb2.HealthCheckRequest(node=base_pb2.Node(id=f"default.dp-{i}"))
        await call.write(hds_pb2.HealthCheckRequestOrEndpointHealthResponse(health_check_request=hello))
        await call.read()
        for _ in range(reports):
            await call.write(message)
            await asyncio.sleep(gap * (0.5 + random.random()))
        await asyncio.sleep(3)  # the server has counted the last ones
        call.cancel()
        await channel.close()

    await asyncio.gather(*(one(i) for i in range(streams)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", help="bare or hds: the servers to measure, in order (default: bare hds bare hds)")
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--reports", type=int, default=12)
    ap.add_argument("--gap", type=float, default=1.0)
    args = ap.parse_args()
    if set(args.kinds) - {"bare", "hds"}:
        ap.error("a server is bare or hds")
    ctx = mp.get_context("spawn")  # gRPC must not be forked
    for kind in args.kinds or ["bare", "hds", "bare", "hds"]:
        port_q: Queue[int] = ctx.Queue()
        done_q: Queue[tuple[float, int]] = ctx.Queue()
        proc = ctx.Process(target=_server, args=(kind, args.streams, args.reports, port_q, done_q), daemon=True)
        proc.start()
        try:
            asyncio.run(_clients(port_q.get(timeout=30), args.streams, args.reports, args.gap))
            per_report, counted = done_q.get(timeout=60)
            print(f"{kind}: {per_report:.0f} µs of server CPU per report ({counted} reports)", flush=True)
        finally:
            port_q.put(0)
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
