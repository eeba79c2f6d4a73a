"""xDS at scale: N simulated proxies on real gRPC streams against `reconciler serve`.

Builds a bare repository with one mesh of N dataplanes; each proxy has one inbound and
outbounds to 10 services (svc-0 among them, for every proxy). Starts the control plane as
its own process, connects N ADS clients that behave like Envoy (wildcard CDS/LDS, EDS/RDS for
what they learn, ACK every response), then `git push`es a commit that adds an endpoint to
svc-0 — a change every proxy must receive — and measures:

  connect     time until all N proxies have ACKed their first full config
  push→ACK    time from `git push` returning to the last proxy ACKing the new endpoints
  server      CPU seconds used and RSS growth of the control plane, per proxy

Usage: .venv/bin/python bench/xds_scale.py [--proxies 100 1000] [--services 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
OUTBOUNDS = 10


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def dataplane(i: int, services: int, service: str | None = None) -> str:
    svc = service or f"svc-{i % services}"
    lines = [
        "type: Dataplane",
        "mesh: default",
        f"name: dp-{i}",
        "networking:",
        f"  address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "  inbound:",
        "    - port: 8080",
        "      servicePort: 9090",
        "      tags:",
        f"        kuma.io/service: {svc}",
        "        kuma.io/protocol: http",
        "  outbound:",
    ]
    targets = ["svc-0"] + [f"svc-{(i + k) % (services - 1) + 1}" for k in range(1, OUTBOUNDS)]
    for n, target in enumerate(targets):
        lines += [f"    - port: {20000 + n}", "      tags:", f"        kuma.io/service: {target}"]
    return "\n".join(lines) + "\n"


def build_repo(root: Path, proxies: int, services: int) -> tuple[Path, Path]:
    bare, work = root / "config.git", root / "work"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "init", "-q", "-b", "main", str(work))
    (work / "mesh.yaml").write_text("type: Mesh\nname: default\n")
    (work / "dataplanes").mkdir()
    for i in range(proxies):
        (work / "dataplanes" / f"dp-{i}.yaml").write_text(dataplane(i, services))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "seed")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    return bare, work


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS")) / 1024
    return cpu, rss


class Proxy:
    """An ADS client that behaves like Envoy's SotW subscription logic."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.queue: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        self.subscribed: dict[str, list[str]] = {}
        self.synced = asyncio.Event()
        self.acked_types: set[str] = set()
        self.svc0_endpoints = 0
        self.target_endpoints = -1
        self.reached_target = asyncio.Event()
        self.reached_at = 0.0
        self.last: dict[str, discovery_pb2.DiscoveryResponse] = {}

    async def requests(self):  # type: ignore[no-untyped-def]
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    def request(
        self, type_url: str, names: list[str] | None = None, response: discovery_pb2.DiscoveryResponse | None = None, first: bool = False
    ) -> None:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names or [])
        if first:
            req.node.CopyFrom(base_pb2.Node(id=self.node_id))
        if response is not None:
            req.version_info, req.response_nonce = response.version_info, response.nonce
        self.queue.put_nowait(req)

    async def run(self, channel: grpc.aio.Channel) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(self.requests())
        self.request(CDS, first=True)
        self.request(LDS)
        async for response in call:
            t = response.type_url
            names = self.subscribed.get(t)
            if t == CDS:
                clusters = sorted(cluster_pb2.Cluster.FromString(a.value).name for a in response.resources)
                eds = [c for c in clusters if not c.startswith("localhost:")]
                self.request(CDS, response=response)
                if eds != self.subscribed.get(EDS):
                    self.subscribed[EDS] = eds
                    self.request(EDS, eds, response=self.last.get(EDS))
            elif t == LDS:
                routes = sorted({_rds(a.value) for a in response.resources} - {""})
                self.request(LDS, response=response)
                # Sidecar routes are inline in their listeners; RDS only for those that name one.
                if routes and routes != self.subscribed.get(RDS):
                    self.subscribed[RDS] = routes
                    self.request(RDS, routes, response=self.last.get(RDS))
            else:
                if t == EDS:
                    for a in response.resources:
                        cla = endpoint_pb2.ClusterLoadAssignment.FromString(a.value)
                        if cla.cluster_name == "svc-0":
                            self.svc0_endpoints = sum(len(x.lb_endpoints) for x in cla.endpoints)
                self.request(t, names, response=response)
                if t == EDS and self.svc0_endpoints == self.target_endpoints and not self.reached_target.is_set():
                    self.reached_at = time.perf_counter()
                    self.reached_target.set()
            self.last[t] = response
            self.acked_types.add(t)
            if self.acked_types >= {CDS, EDS, LDS} | ({RDS} if self.subscribed.get(RDS) else set()):
                self.synced.set()


def _rds(payload: bytes) -> str:
    listener = listener_pb2.Listener.FromString(payload)
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == "envoy.filters.network.http_connection_manager":
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                return hcm.rds.route_config_name
    return ""


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cp(bare: Path, root: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    xds_port, api_port = free_port(), free_port()
    cp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "serve",
            "--repo",
            str(bare),
            "--state-dir",
            str(root / "state"),
            "--xds-port",
            str(xds_port),
            "--api-port",
            str(api_port),
            "--poll-interval",
            "1",
            # The simulated proxies measure xDS work, not TLS handshakes or token checks.
            "--dataplane-auth",
            "none",
            "--xds-tls",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "cp.log", "w"),  # noqa: SIM115 (the child process writes to it)
        cwd=ROOT,
    )
    wait_http(f"http://127.0.0.1:{api_port}/status")
    return cp, xds_port, api_port


def baseline_rss(root: Path) -> float:
    """RSS of a control plane serving a mesh with no dataplanes: the fixed cost."""
    bare, _ = build_repo(root, 0, 50)
    cp, _, _ = start_cp(bare, root)
    try:
        time.sleep(1)
        return proc_stats(cp.pid)[1]
    finally:
        cp.terminate()
        cp.wait(10)


async def measure(proxies: int, services: int, root: Path, baseline: float) -> dict[str, float]:
    bare, work = build_repo(root, proxies, services)
    cp, xds_port, api_port = start_cp(bare, root)
    try:
        cpu0, rss0 = proc_stats(cp.pid)
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") for _ in range(max(1, proxies // 50))]
        clients = [Proxy(f"default.dp-{i}") for i in range(proxies)]
        started = time.perf_counter()
        tasks = [asyncio.create_task(c.run(channels[i % len(channels)])) for i, c in enumerate(clients)]
        await asyncio.wait_for(asyncio.gather(*(c.synced.wait() for c in clients)), 300)
        connect = time.perf_counter() - started
        await asyncio.sleep(1)
        cpu1, rss1 = proc_stats(cp.pid)

        endpoints_before = clients[0].svc0_endpoints
        for c in clients:
            c.target_endpoints = endpoints_before + 1
        (work / "dataplanes" / "dp-new.yaml").write_text(dataplane(proxies, services, service="svc-0").replace(f"dp-{proxies}", "dp-new"))
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "one more svc-0 endpoint")
        git(work, "push", "-q", "origin", "main")
        pushed = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(c.reached_target.wait() for c in clients)), 120)
        push_latency = max(c.reached_at for c in clients) - pushed
        cpu2, peak = proc_stats(cp.pid)
        await asyncio.sleep(3)  # steady state: the server hands freed memory back after a reconcile
        rss2 = proc_stats(cp.pid)[1]
        for c in clients:
            c.queue.put_nowait(None)
        for t in tasks:
            t.cancel()
        for ch in channels:
            await ch.close()
        return {
            "proxies": proxies,
            "connect_s": connect,
            "push_to_last_ack_s": push_latency,
            "cpu_connect_s": cpu1 - cpu0,
            "cpu_push_s": cpu2 - cpu1,
            "rss_empty_mesh_mib": baseline,
            "rss_before_connect_mib": rss0,
            "rss_mib": rss2,
            "rss_right_after_push_mib": peak,
            "kib_per_proxy": (rss2 - baseline) * 1024 / proxies,
        }
    finally:
        cp.terminate()
        cp.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--services", type=int, default=50)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = baseline_rss(Path(tmp))
    for n in args.proxies:
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(measure(n, args.services, Path(tmp), baseline))
            results.append(r)
            print(
                f"{n:>5} proxies: connect+sync {r['connect_s']:.2f}s, push→last ACK {r['push_to_last_ack_s']:.2f}s, "
                f"server CPU {r['cpu_connect_s']:.1f}s (connect) {r['cpu_push_s']:.2f}s (push), "
                f"RSS {r['rss_mib']:.0f} MiB steady, {r['rss_right_after_push_mib']:.0f} MiB right after the push "
                f"({r['rss_empty_mesh_mib']:.0f} MiB with no proxies; {r['kib_per_proxy']:.0f} KiB/proxy steady)",
                flush=True,
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
