"""Memory per connected proxy, and where it goes.

Runs the control plane in this process (on its own event loop thread, as
tests/security/support.py's LocalControlPlane does) on the repository of bench/xds_scale.py,
connects N simulated proxies from worker processes (bench/_ads_clients.py, each on its own TCP
connection) and reports (RSS with every proxy connected and synced − RSS before) / N, the same
figure as xds_scale.py's "memory per connected proxy".

  --floor       instead of the control plane, a trivial grpc.aio ADS server (with the control
                plane's gRPC options) whose streams read the proxies' requests and never answer:
                gRPC's own cost of one idle stream on its own connection, the part no code of
                ours can cut (only gRPC options)
  --answer      with --floor: each stream answers every request that is not an ACK once, with
                an empty response of its type (gRPC's cost of a stream that has written)
  --option K=V  a gRPC server option, to see what it does to that cost
  --trace       tracemalloc snapshots before and after the connect: the Python allocations
                kept per proxy, grouped by file:line (gRPC core's C allocations are not traced;
                RSS minus the traced part is theirs and the allocator's)

Usage: .venv/bin/python bench/xds_memory.py [--proxies 1000] [--delta] [--runs 3] [--floor] [--trace]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _ads_clients import Workers
from xds_scale import build_repo, processes_for, wait_all

from reconciler.controlplane import ControlPlane, ServeSettings
from reconciler.controlplane.memory import release_free_memory

SERVICES = 50
SETTLE_S = 2.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Loop:
    """An asyncio loop on a thread of its own (the server's), as `reconciler serve` has one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any, timeout: float = 600) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def settled() -> int:
    """RSS (KiB) once garbage is collected and freed heap handed back, as the server does."""
    gc.collect()
    release_free_memory()
    return rss_kib()


class FloorServer:
    """ADS with nothing behind it: each stream reads requests until the proxy goes."""

    def __init__(self, loop: Loop, options: list[tuple[str, Any]], *, answer: bool, resources: list[Any] | None = None) -> None:
        self.loop = loop
        self.answer = answer
        self.resources = resources or []
        """What each answer carries (`Any`s): none for --answer; bench/grpc_floor.py gives some."""
        self.streams = 0
        self.port = loop.call(self._start(options))

    async def _start(self, options: list[tuple[str, Any]]) -> int:
        import grpc
        from envoy.service.discovery.v3 import ads_pb2_grpc

        from reconciler.controlplane.grpc_setup import CONNECT_STORM_OPTIONS, MEMORY_OPTIONS

        floor = self

        class Idle(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
            async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:
                await floor._idle(context)

            async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
                await floor._idle(context)

        self.server = grpc.aio.server(options=[*CONNECT_STORM_OPTIONS, *MEMORY_OPTIONS, *options])
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Idle(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return int(port)

    async def _idle(self, context: Any) -> None:
        import grpc
        from envoy.service.discovery.v3 import discovery_pb2

        first = True
        while (req := await context.read()) is not grpc.aio.EOF:
            if first:
                self.streams, first = self.streams + 1, False
            if self.answer and not req.response_nonce:
                delta = isinstance(req, discovery_pb2.DeltaDiscoveryRequest)
                cls = discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
                resources = (
                    [discovery_pb2.Resource(name=str(i), resource=r) for i, r in enumerate(self.resources)] if delta else self.resources
                )
                await context.write(cls(type_url=req.type_url, nonce="1", resources=resources))

    def stop(self) -> None:
        self.loop.call(self.server.stop(None))


def wait_streams(floor: FloorServer, proxies: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while floor.streams < proxies:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {floor.streams} of {proxies} streams opened")
        time.sleep(0.2)


def top(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, proxies: int, limit: int) -> list[str]:
    """The memory kept per proxy, by the innermost line of the project that allocated it (or
    of the standard library / gRPC when no line of ours is on the stack)."""
    root = str(Path(__file__).resolve().parents[1]) + "/"
    sizes: dict[str, list[int]] = {}
    for s in after.compare_to(before, "traceback"):
        frames = list(reversed(s.traceback))  # innermost first
        ours = next((f for f in frames if f.filename.startswith(root + "reconciler/")), frames[0])
        where = f"{ours.filename.replace(root, '').split('site-packages/')[-1].split('lib/python3.11/')[-1]}:{ours.lineno}"
        acc = sizes.setdefault(where, [0, 0])
        acc[0] += s.size_diff
        acc[1] += s.count_diff
    total = sum(size for size, _ in sizes.values())
    lines = [f"traced Python memory kept: {total / 1024 / proxies:.1f} KiB per proxy"]
    for where, (size, count) in sorted(sizes.items(), key=lambda kv: -kv[1][0])[:limit]:
        lines.append(f"  {size / proxies:8.0f} B/proxy {count / proxies:6.1f} blocks/proxy  {where}")
    return lines


def one_run(
    proxies: int, delta: bool, floor: bool, options: list[tuple[str, Any]], trace: bool, limit: int, *, answer: bool = False
) -> dict[str, Any]:
    loop = Loop()
    with tempfile.TemporaryDirectory(prefix="xds-memory-") as tmp:
        root = Path(tmp)
        server: Any
        if floor:
            server = FloorServer(loop, options, answer=answer)
            address = f"127.0.0.1:{server.port}"
        else:
            bare, _ = build_repo(root, proxies, SERVICES)
            settings = ServeSettings(
                repo=str(bare), state_dir=str(root / "state"), xds_port=0, api_port=0, dataplane_auth="none", xds_tls="none"
            )
            server = ControlPlane(settings)
            loop.call(server.start())
            address = f"127.0.0.1:{server.xds_port}"
        workers = Workers(address, proxies, processes_for(proxies), delta=delta)
        workers.ask("status")
        time.sleep(SETTLE_S)
        if trace:
            tracemalloc.start(16)
        before = settled()
        snap0 = tracemalloc.take_snapshot() if trace else None
        workers.ask("connect")
        if floor:
            wait_streams(server, proxies)
        else:
            synced = len(wait_all(workers, proxies, 180)["synced"])
            if synced < proxies:
                raise RuntimeError(f"only {synced} of {proxies} proxies synced")
        time.sleep(SETTLE_S)
        after = settled()
        out: dict[str, Any] = {"rss_before_mib": round(before / 1024, 1), "kib_per_proxy": round((after - before) / proxies, 1)}
        if trace and snap0 is not None:
            out["trace"] = top(snap0, tracemalloc.take_snapshot(), proxies, limit)
            tracemalloc.stop()
        workers.close()
        if floor:
            server.stop()
        else:
            loop.call(server.stop())
    loop.close()
    return out


def in_process_of_its_own() -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        argv = list(sys.argv[1:])
        subprocess.run([sys.executable, __file__, *argv, "--runs", "1", "--json", f.name], check=True, stdout=subprocess.DEVNULL)
        return dict(json.loads(Path(f.name).read_text())["runs"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", type=int, default=1000)
    parser.add_argument("--delta", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--answer", action="store_true")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    options = [(k, int(v) if v.lstrip("-").isdigit() else v) for k, v in (o.split("=", 1) for o in args.option)]
    runs = []
    for i in range(args.runs):
        # Each run in a fresh process: memory a run freed would make the next one look cheaper.
        r = (
            one_run(args.proxies, args.delta, args.floor, options, args.trace, args.top, answer=args.answer)
            if args.runs == 1
            else in_process_of_its_own()
        )
        runs.append(r)
        print(f"run {i + 1}: {r['kib_per_proxy']} KiB per proxy (RSS before {r['rss_before_mib']} MiB)", flush=True)
        for line in r.get("trace", []):
            print(line)
    what = (
        ("gRPC floor (streams answered once per type)" if args.answer else "gRPC floor (idle streams)") if args.floor else "control plane"
    )
    median = statistics.median(r["kib_per_proxy"] for r in runs)
    print(f"{what}, {args.proxies} {'delta' if args.delta else 'SotW'} proxies, options {options}: median {median} KiB per proxy")
    if args.json:
        args.json.write_text(json.dumps({"proxies": args.proxies, "delta": args.delta, "floor": args.floor, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
