"""Simulated Envoys for bench/xds_scale.py: ADS clients (SotW or delta) that each hold their own
TCP connection, subscribe and ACK like Envoy, and reconnect with Envoy's backoff.

Envoy's ADS reconnect backoff is jittered exponential: base 0.5 s, at most 30 s, each wait drawn
uniformly below the current bound, which is reset once a response arrives. Every stream the
server ends is counted by status code, every reconnect as a retry.

The clients run in worker processes (`Workers`), each with its own event loop, so that one
loop does not have to drive 10,000 streams; the benchmark talks to them over pipes.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing as mp
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from _hds_clients import HdsClient, hds_summary

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
BACKOFF_BASE, BACKOFF_MAX = 0.5, 30.0
DETAILS = bool(os.environ.get("XDS_SCALE_DETAILS"))
"""Also count each status with its details and the phase the stream was in."""


def version_of(payload: bytes) -> str:
    """A resource's version as the server computes it (xds/resources.py): a hash of its bytes."""
    return hashlib.sha256(payload).hexdigest()[:16]


@dataclass
class SimProxy:
    node_id: str
    delta: bool
    held: dict[str, dict[str, str]] = field(default_factory=dict)
    """What the proxy has: type URL → resource name → version."""
    endpoints: dict[str, int] = field(default_factory=dict)
    """Endpoints per EDS cluster."""
    sotw_versions: dict[str, str] = field(default_factory=dict)
    subscribed: dict[str, list[str]] = field(default_factory=dict)
    responses: int = 0
    requests: int = 0
    retries: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    synced_at: float = 0.0
    target: dict[str, Any] | None = None
    phase: str = "idle"
    """Where the current stream is: opening, written (first request sent), served (a response read)."""
    reached_at: float = 0.0
    cds_changed: bool = False
    """The target's clusters arrived (a CDS update that differs from `cds_from`)."""
    rewarmed: bool = False
    """An EDS response came after them."""

    def reached(self) -> bool:
        t = self.target
        if t is None:
            return False
        lds_from, cds_from = t["lds_from"], t.get("cds_from")
        return (
            all(self.endpoints.get(c, 0) >= n for c, n in t["endpoints"].items())
            and (lds_from is None or self.held.get(LDS) != lds_from)
            and (cds_from is None or (self.held.get(CDS) != cds_from and self.rewarmed))
        )

    def after_response(self, type_url: str) -> None:
        now = time.time()
        self.responses += 1
        t = self.target
        if t is not None and t.get("cds_from") is not None:
            # Changed clusters warm until their endpoints come again: the change is applied once
            # an EDS response follows the CDS update that changed them.
            if type_url == CDS and self.held.get(CDS) != t["cds_from"]:
                self.cds_changed = True
            elif type_url == EDS and self.cds_changed:
                self.rewarmed = True
        if not self.synced_at and {CDS, EDS, LDS} <= self.held.keys() and (RDS in self.held or not self.subscribed.get(RDS)):
            self.synced_at = now
        if self.target is not None and not self.reached_at and self.reached():
            self.reached_at = now

    def digest(self) -> dict[str, dict[str, str]]:
        return {t: dict(sorted(m.items())) for t, m in sorted(self.held.items())}


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a simulated proxy needs from one resource's bytes."""

    name: str
    version: str
    eds: bool = False
    """A cluster whose endpoints come from EDS."""
    routes: tuple[str, ...] = ()
    """The RDS route configurations a listener names."""
    endpoints: int = 0
    """The endpoints of a ClusterLoadAssignment."""


_PARSED: dict[tuple[str, bytes], Parsed] = {}
"""Every distinct resource is parsed once per client process. Real Envoys each parse on their own
cores; 10,000 simulated ones share the server's 2 cores, and parsing the same bytes 10,000 times
would measure the clients, not the server."""


def parse(type_url: str, payload: bytes) -> Parsed:
    key = (type_url, payload)
    hit = _PARSED.get(key)
    if hit is None:
        hit = _PARSED[key] = _parse(type_url, payload)
    return hit


def _parse(type_url: str, payload: bytes) -> Parsed:
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.endpoint.v3 import endpoint_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.config.route.v3 import route_pb2

    version = version_of(payload)
    if type_url == CDS:
        cluster = cluster_pb2.Cluster.FromString(payload)
        return Parsed(cluster.name, version, eds=cluster.type == cluster_pb2.Cluster.EDS)
    if type_url == EDS:
        cla = endpoint_pb2.ClusterLoadAssignment.FromString(payload)
        return Parsed(cla.cluster_name, version, endpoints=sum(len(x.lb_endpoints) for x in cla.endpoints))
    if type_url == LDS:
        listener = listener_pb2.Listener.FromString(payload)
        return Parsed(listener.name, version, routes=_route_names(listener))
    return Parsed(route_pb2.RouteConfiguration.FromString(payload).name, version)


def _route_names(listener: Any) -> tuple[str, ...]:
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

    names = set()
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == "envoy.filters.network.http_connection_manager":
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                if hcm.rds.route_config_name:
                    names.add(hcm.rds.route_config_name)
    return tuple(sorted(names))


def _payload_names(type_url: str, resources: Any) -> dict[str, Parsed]:
    out = {}
    for a in resources:
        parsed = parse(type_url, a.value)
        out[parsed.name] = parsed
    return out


class Client:
    """One SimProxy's life: a channel of its own, streams reopened with backoff until stopped."""

    def __init__(self, proxy: SimProxy, address: str, index: int) -> None:
        import grpc

        # Distinct channel args and a local subchannel pool: gRPC would otherwise put every
        # channel to one address on one subchannel, one TCP connection for all proxies.
        options = [("grpc.use_local_subchannel_pool", 1), ("bench.proxy", index)]
        self.channel = grpc.aio.insecure_channel(address, options=options)
        self.proxy = proxy
        self.payloads: dict[str, dict[str, Parsed]] = {}
        self.stopped = False

    async def run(self) -> None:
        import grpc

        attempt = 0
        while not self.stopped:
            served_before = self.proxy.responses
            try:
                await self._stream()
                self.proxy.ended["OK"] += 1
            except grpc.aio.AioRpcError as e:
                self.proxy.ended[e.code().name] += 1
                if DETAILS:
                    self.proxy.ended[f"{e.code().name}: {e.details()} [{self.proxy.phase}]"] += 1
            if self.stopped:
                return
            attempt = 0 if self.proxy.responses > served_before else attempt + 1
            self.proxy.retries += 1
            await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)))

    async def _write(self, call: Any, request: Any) -> None:
        self.proxy.requests += 1
        await call.write(request)

    async def _stream(self) -> None:
        from envoy.config.core.v3 import base_pb2
        from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        p = self.proxy
        node = base_pb2.Node(id=p.node_id)
        p.phase = "opening"
        if p.delta:
            call = stub.DeltaAggregatedResources()
            for i, t in enumerate((CDS, LDS, EDS, RDS)):
                names = [] if t in (CDS, LDS) else p.subscribed.get(t, [])
                if t in (EDS, RDS) and not names:
                    continue
                req = discovery_pb2.DeltaDiscoveryRequest(
                    type_url=t, resource_names_subscribe=names, initial_resource_versions=p.held.get(t, {})
                )
                if i == 0:
                    req.node.CopyFrom(node)
                await self._write(call, req)
        else:
            call = stub.StreamAggregatedResources()
            for i, t in enumerate((CDS, LDS, EDS, RDS)):
                names = p.subscribed.get(t, [])
                if t in (EDS, RDS) and not names:
                    continue
                req = discovery_pb2.DiscoveryRequest(type_url=t, resource_names=names, version_info=p.sotw_versions.get(t, ""))
                if i == 0:
                    req.node.CopyFrom(node)
                await self._write(call, req)
        self.call = call
        p.phase = "written"
        async for response in call:
            p.phase = "served"
            await self._on_response(call, response)

    async def _on_response(self, call: Any, response: Any) -> None:
        from envoy.service.discovery.v3 import discovery_pb2

        p, t = self.proxy, response.type_url
        if p.delta:
            table = self.payloads.setdefault(t, {})
            for name in response.removed_resources:
                table.pop(name, None)
            for r in response.resources:
                table.update(_payload_names(t, [r.resource]))
            await self._write(call, discovery_pb2.DeltaDiscoveryRequest(type_url=t, response_nonce=response.nonce))
        else:
            table = _payload_names(t, response.resources)
            if t not in (CDS, LDS):
                # Only LDS and CDS responses are the whole state; for the other types the proxy
                # keeps what a response leaves out, as long as it still asks for it (as Envoy does).
                wanted = set(p.subscribed.get(t, []))
                table = {n: r for n, r in self.payloads.get(t, {}).items() if n in wanted} | table
            self.payloads[t] = table
            p.sotw_versions[t] = response.version_info
            names = p.subscribed.get(t, [])
            await self._write(
                call,
                discovery_pb2.DiscoveryRequest(
                    type_url=t, resource_names=names, version_info=response.version_info, response_nonce=response.nonce
                ),
            )
        p.held[t] = {n: r.version for n, r in table.items()}
        if t == EDS:
            for n, r in table.items():
                p.endpoints[n] = r.endpoints
        if t == CDS:
            await self._subscribe(call, EDS, sorted(n for n, r in table.items() if r.eds))
        elif t == LDS:
            await self._subscribe(call, RDS, sorted({name for r in table.values() for name in r.routes}))
        p.after_response(t)

    async def _subscribe(self, call: Any, type_url: str, wanted: list[str]) -> None:
        from envoy.service.discovery.v3 import discovery_pb2

        p = self.proxy
        before = p.subscribed.get(type_url, [])
        if wanted == before:
            return
        p.subscribed[type_url] = wanted
        if p.delta:
            gone = sorted(set(before) - set(wanted))
            new = sorted(set(wanted) - set(before))
            await self._write(
                call, discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=new, resource_names_unsubscribe=gone)
            )
        else:
            await self._write(
                call,
                discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=wanted, version_info=p.sotw_versions.get(type_url, "")),
            )


async def _serve_commands(conn: Connection, address: str, ids: list[int], delta: bool, hds: bool) -> None:
    loop = asyncio.get_running_loop()
    proxies = {i: SimProxy(f"default.dp-{i}", delta) for i in ids}
    clients = [Client(p, address, i) for i, p in proxies.items()]
    health = [HdsClient(c.channel, c.proxy.node_id) for c in clients] if hds else []
    tasks: list[asyncio.Task[None]] = []
    marks: dict[int, int] = {}
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "connect":
            tasks = [asyncio.create_task(c.run()) for c in clients] + [asyncio.create_task(h.run()) for h in health]
            conn.send(None)
        elif cmd == "status":
            conn.send(
                {
                    "synced": sorted(p.synced_at for p in proxies.values() if p.synced_at),
                    "retries": sum(p.retries for p in proxies.values()),
                    "responses": sum(p.responses for p in proxies.values()),
                    "requests": sum(p.requests for p in proxies.values()),
                    "ended": sum((p.ended for p in proxies.values()), Counter()),
                    "unsynced": [
                        (p.node_id, p.phase, str(c.channel.get_state()), p.retries, dict(p.ended))
                        for c in clients
                        if not (p := c.proxy).synced_at
                    ][:20],
                }
                | hds_summary([h.state for h in health])
            )
        elif cmd == "target":  # arg: {"ids": [...] or None, "endpoints_plus": {cluster: n}, "listeners"/"clusters": changed or not}
            marks = {i: p.responses for i, p in proxies.items()}
            synced = {i for i, p in proxies.items() if p.synced_at}
            chosen = synced if arg["ids"] is None else set(arg["ids"]) & synced
            for i in chosen:
                p = proxies[i]
                p.reached_at = 0.0
                p.cds_changed = p.rewarmed = False
                plus = arg["endpoints_plus"]
                lds_from = dict(p.held.get(LDS, {})) if arg["listeners"] else None
                cds_from = dict(p.held.get(CDS, {})) if arg.get("clusters") else None
                p.target = {
                    "endpoints": {c: p.endpoints.get(c, 0) + n for c, n in plus.items()},
                    "lds_from": lds_from,
                    "cds_from": cds_from,
                }
            conn.send(None)
        elif cmd == "reached":
            targeted = [p for p in proxies.values() if p.target is not None]
            conn.send({"times": [p.reached_at for p in targeted if p.reached_at], "waiting": sum(1 for p in targeted if not p.reached_at)})
        elif cmd == "pushed":  # proxies given a response since the target was set, outside the target
            conn.send([i for i, p in proxies.items() if p.target is None and p.responses > marks.get(i, 0)])
        elif cmd == "clear":
            for p in proxies.values():
                p.target = None
            conn.send(None)
        elif cmd == "digest":
            conn.send({i: p.digest() for i, p in proxies.items()})
        elif cmd == "stop":
            for c in clients:
                c.stopped = True
                c.call.cancel() if hasattr(c, "call") else None
            await asyncio.gather(*(h.stop() for h in health))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(c.channel.close() for c in clients), return_exceptions=True)
            conn.send(None)
            return


def _worker(conn: Connection, address: str, ids: list[int], delta: bool, hds: bool) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve_commands(conn, address, ids, delta, hds))


class Workers:
    """Client processes, each driving a share of the proxies (with `hds`, an HDS stream each too)."""

    def __init__(self, address: str, proxies: int, processes: int, *, delta: bool, hds: bool = False) -> None:
        ctx = mp.get_context("spawn")  # gRPC must not be forked
        self.conns: list[Connection] = []
        self.procs = []
        for k in range(processes):
            parent, child = ctx.Pipe()
            ids = list(range(k, proxies, processes))
            proc = ctx.Process(target=_worker, args=(child, address, ids, delta, hds), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def ask(self, cmd: str, arg: Any = None) -> list[Any]:
        for c in self.conns:
            c.send((cmd, arg))
        return [c.recv() for c in self.conns]

    def close(self) -> None:
        try:
            self.ask("stop")
        finally:
            for p in self.procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
