"""One real Envoy reaching N services: how long until it is ready, what it costs, beside sovereign.

For each N (default 1,000 and 10,000) the script builds a bare git repository with a Mesh
(mTLS off), N services, each declared as a Dataplane whose inbound is one of four tiny HTTP
servers of this process, and one client Dataplane per outbound shape with N outbounds (an
address of its own on 127.B.x.y and a port of its own each, so no other process here uses
them). It starts `reconciler serve` as in production (xDS over TLS, dataplane tokens on),
then runs, one after the other:

  kuma       the client labelled `reconciler.io/outbound-shape: kuma` (Kuma's shape: a listener
             per outbound)
  compact    the client labelled `reconciler.io/outbound-shape: compact` (one listener holding
             every outbound address); a control plane without the compact shape ignores the label
  sovereign  sovereign (PyPI, REST polling) in its own venv, bench/.venv-sovereign (made on
             demand, or by `make bench-deps`), serving the same logical config: N listeners with
             their routes inline, to N clusters with the same endpoints

Every Envoy is the same binary with `--concurrency 1`; ours is started by
`reconciler run-dataplane --concurrency 1` (or, while run-dataplane has no such flag, by
`reconciler bootstrap` and Envoy started with run-dataplane's own flags plus `--concurrency 1`).
For each run it measures, on Envoy's admin port and in /proc:

  ready          Envoy's process start → /ready LIVE, every cluster and every outbound address's
                 listener active, nothing warming (/ready polled every 50 ms; the stats are read
                 once it is LIVE, since each read walks every stat on Envoy's main thread)
  CPU            Envoy's user + system CPU until then: its work, however busy the machine is
  accepted       when Envoy last accepted a CDS / LDS response (the update_time gauges), from its start
  apply times    sums of Envoy's own histograms: cluster_manager.cds.update_duration, every EDS
                 cluster's and every RDS subscription's update_duration, listener_manager.lds.
                 update_duration (Envoy 1.40 records them for gRPC subscriptions, not for REST)
  memory         server.memory_allocated and the process's RSS, once ready
  timeouts       "initial fetch timed out" lines in Envoy's log
  traffic        one GET through each of three sampled outbounds reaches its upstream

Usage: .venv/bin/python bench/envoy_outbounds.py [--services 1000 10000] [--shapes kuma compact sovereign] [--runs 1]
                                                 [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _envoy_support import (  # noqa: E402
    boottime,
    cpu_seconds,
    envoy_child,
    gauges,
    process_started,
    prometheus_totals,
    rss_mib,
    stop_process,
    wait_ready,
)
from _sovereign import SOVEREIGN_VERSION, install, rest_bootstrap, sovereign_server  # noqa: E402

from reconciler.dataplane.envoy_binary import find_envoy  # noqa: E402
from reconciler.dataplane.launcher import envoy_command  # noqa: E402
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get  # noqa: E402

SHAPES = ("kuma", "compact", "sovereign")
SHAPE_LABEL = "reconciler.io/outbound-shape"
UPSTREAMS = 4
OUTBOUND_PORT_BASE = 20000
# Envoy's own apply times (histograms, ms) and initial-fetch timeouts, from /stats/prometheus.
HISTOGRAMS = "update_duration|initialization_time_ms|init_fetch_timeout"


# ---------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class Outbound:
    service: str
    address: str
    port: int
    upstream: Workload


def outbounds(n: int, upstreams: list[Workload], block: int) -> list[Outbound]:
    """N outbounds, each on its own loopback address of 127.<block>.0.0/16 and its own port."""
    return [
        Outbound(f"svc-{i}", f"127.{block}.{i // 250}.{i % 250 + 1}", OUTBOUND_PORT_BASE + i, upstreams[i % len(upstreams)])
        for i in range(n)
    ]


def service_dataplane(i: int, upstream: Workload) -> str:
    # No sidecar in front of the service: its endpoint (address:port) is the HTTP server itself.
    return (
        f"type: Dataplane\nmesh: default\nname: svc-{i}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
        f"    - port: {upstream.port}\n      servicePort: {upstream.port}\n"
        f"      tags:\n        kuma.io/service: svc-{i}\n        kuma.io/protocol: http\n"
    )


def client_dataplane(name: str, shape: str, inbound: int, outs: list[Outbound]) -> str:
    lines = [
        "type: Dataplane",
        "mesh: default",
        f"name: {name}",
        "labels:",
        f"  {SHAPE_LABEL}: {shape}",
        "networking:",
        "  address: 127.0.0.1",
        "  inbound:",
        f"    - port: {inbound}",
        f"      servicePort: {free_port()}",
        "      tags:",
        f"        kuma.io/service: {name}",
        "        kuma.io/protocol: http",
        "  outbound:",
    ]
    for o in outs:
        lines += [f"    - address: {o.address}", f"      port: {o.port}", "      tags:", f"        kuma.io/service: {o.service}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- running Envoy


@dataclass
class Run:
    shape: str
    services: int
    launched: float  # boottime() when we started the launcher (run-dataplane or Envoy itself)
    envoy_started: float
    ready_at: float
    admin: str
    pid: int
    log: Path
    sampled: list[Outbound]
    extra: dict[str, Any]


class DirectEnvoy:
    """Envoy started by this script with run-dataplane's flags: for sovereign, and for our
    bootstrap while run-dataplane cannot be given a worker count."""

    def __init__(self, bootstrap: dict[str, Any], work: Path, name: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / f"{name}.bootstrap.json"
        self.config.write_text(json.dumps(bootstrap))
        self.config.chmod(0o600)
        self.log_path = work / f"{name}.envoy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (the child process writes to it)
        self.proc = subprocess.Popen(
            envoy_command(str(self.config), extra=["--concurrency", "1"]), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.log)


def run_dataplane_has_concurrency() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "reconciler", "run-dataplane", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    return "--concurrency" in help_text


def measure_envoy(
    shape: str,
    services: int,
    launched: float,
    pid: int,
    admin: str,
    log: Path,
    sampled: list[Outbound],
    addresses: int,
    alive: Callable[[], bool],
    timeout: float,
) -> Run:
    started = process_started(pid)
    readiness = wait_ready(admin, clusters=services, addresses=addresses, timeout=timeout, alive=alive)
    cpu = cpu_seconds(pid)
    extra = {"gauges": readiness.stats, "addresses": readiness.addresses, "stats_read_s": readiness.stats_cost, "cpu_s": cpu}
    return Run(shape, services, launched, started, readiness.at, admin, pid, log, sampled, extra)


def collect(run: Run) -> dict[str, Any]:
    """Envoy's own figures once it is ready, then traffic through the sampled outbounds."""
    memory = gauges(
        run.admin,
        ("server.memory_allocated", "server.memory_heap_size", "cluster_manager.cds.update_time", "listener_manager.lds.update_time"),
    )
    rss = rss_mib(run.pid)
    # update_time: when Envoy last accepted a CDS/LDS response (ms since the epoch), for ADS and REST alike.
    started_epoch_ms = (time.time() - (boottime() - run.envoy_started)) * 1000
    # Histograms reach the admin output at Envoy's next stats flush (every 5 s).
    deadline = time.monotonic() + 12
    while True:
        totals = prometheus_totals(run.admin, HISTOGRAMS)
        if totals.get("envoy_server_initialization_time_ms_count") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    log_text = run.log.read_text(errors="replace") if run.log.exists() else ""
    traffic = []
    for o in run.sampled:
        try:
            status, body = http_get(f"http://{o.address}:{o.port}/", timeout=5)
        except OSError as e:
            status, body = 0, str(e)
        traffic.append(
            {"outbound": f"{o.address}:{o.port}", "service": o.service, "status": status, "reached": body.strip() == o.upstream.name}
        )

    def total(name: str) -> float:
        return totals.get(f"envoy_{name}", 0.0)

    return {
        "shape": run.shape,
        "services": run.services,
        "ready_s": run.ready_at - run.envoy_started,
        "ready_from_launch_s": run.ready_at - run.launched,
        "cpu_to_ready_s": run.extra["cpu_s"],
        "cds_accepted_s": (memory.get("cluster_manager.cds.update_time", 0) - started_epoch_ms) / 1000,
        "lds_accepted_s": (memory.get("listener_manager.lds.update_time", 0) - started_epoch_ms) / 1000,
        "cds_apply_ms": total("cluster_manager_cds_update_duration_sum"),
        "cds_updates": int(total("cluster_manager_cds_update_duration_count")),
        "lds_apply_ms": total("listener_manager_lds_update_duration_sum"),
        "lds_updates": int(total("listener_manager_lds_update_duration_count")),
        "rds_apply_ms": total("http_rds_update_duration_sum"),
        "rds_updates": int(total("http_rds_update_duration_count")),
        "eds_apply_ms": total("cluster_update_duration_sum"),
        "eds_updates": int(total("cluster_update_duration_count")),
        "init_ms": total("server_initialization_time_ms_sum"),
        "memory_allocated_mib": memory.get("server.memory_allocated", 0) / 2**20,
        "heap_mib": memory.get("server.memory_heap_size", 0) / 2**20,
        "rss_mib": rss,
        "init_fetch_timeout_lines": log_text.lower().count("initial fetch timed out"),
        "init_fetch_timeout_stats": int(sum(v for k, v in totals.items() if k.endswith("init_fetch_timeout"))),
        "listener_addresses": run.extra["addresses"],
        "gauges": run.extra["gauges"],
        "stats_read_s": run.extra["stats_read_s"],
        "prometheus_totals": totals,
        "traffic": traffic,
        "traffic_ok": all(t["status"] == 200 and t["reached"] for t in traffic),
    }


def sample(outs: list[Outbound]) -> list[Outbound]:
    return [outs[0], outs[len(outs) // 2], outs[-1]]


def run_ours(
    cp: ControlPlaneProcess, work: Path, name: str, shape: str, outs: list[Outbound], concurrency_flag: bool, timeout: float
) -> dict[str, Any]:
    admin_port = free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    addresses = len(outs) + 1  # and the inbound
    if concurrency_flag:
        envoy = EnvoyProcess(cp, work, name=name, admin_port=admin_port, extra=["--concurrency", "1"])
        try:
            launched = boottime()
            envoy.start(wait=False)
            assert envoy.proc is not None
            pid = _wait_child(envoy.proc.pid, envoy.alive)
            run = measure_envoy(shape, len(outs), launched, pid, admin, envoy.log_path, sample(outs), addresses, envoy.alive, timeout)
            return collect(run) | {"launcher": "run-dataplane --concurrency 1"}
        finally:
            envoy.stop()
    token = work / f"{name}.token"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text(cp.issue_token(name) + "\n")
    token.chmod(0o600)
    args = [
        sys.executable,
        "-m",
        "reconciler",
        "bootstrap",
        "--cp-address",
        cp.xds,
        "--mesh",
        "default",
        "--name",
        name,
        "--admin-port",
        str(admin_port),
        "--dataplane-token-file",
        str(token),
    ]
    args += ["--ca-cert", str(cp.ca_cert)] if cp.ca_cert else ["--xds-tls", "none"]
    bootstrap = json.loads(subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    direct = DirectEnvoy(bootstrap, work, name)
    try:
        launched = boottime()
        direct.start()
        assert direct.proc is not None
        run = measure_envoy(
            shape, len(outs), launched, direct.proc.pid, admin, direct.log_path, sample(outs), addresses, direct.alive, timeout
        )
        return collect(run) | {"launcher": "reconciler bootstrap + envoy --concurrency 1"}
    finally:
        direct.stop()


def _wait_child(parent: int, alive: Callable[[], bool], timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = envoy_child(parent)
        if pid is not None:
            return pid
        if not alive():
            raise RuntimeError("run-dataplane exited before starting Envoy")
        time.sleep(0.01)
    raise TimeoutError("run-dataplane started no Envoy")


# ---------------------------------------------------------------------------- sovereign


def sovereign_resources(outs: list[Outbound]) -> dict[str, list[dict[str, Any]]]:
    """The logical config of our client, written the way a sovereign user would: each listener's
    routes inline, each cluster with its endpoints inline (STATIC): over REST an EDS cluster
    would be one more poller per cluster."""
    clusters = [
        {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": o.service,
            "type": "STATIC",
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": o.service,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": o.upstream.port}}}}
                        ]
                    }
                ],
            },
        }
        for o in outs
    ]
    listeners = [
        {
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": f"outbound:{o.address}:{o.port}",
            "address": {"socket_address": {"address": o.address, "port_value": o.port}},
            "traffic_direction": "OUTBOUND",
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "stat_prefix": o.service,
                                "route_config": {
                                    "name": o.service,
                                    "virtual_hosts": [
                                        {
                                            "name": o.service,
                                            "domains": ["*"],
                                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": o.service}}],
                                        }
                                    ],
                                },
                                "http_filters": [
                                    {
                                        "name": "envoy.filters.http.router",
                                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                                    }
                                ],
                            },
                        }
                    ]
                }
            ],
        }
        for o in outs
    ]
    return {"clusters": clusters, "listeners": listeners}


def sovereign_templates(work: Path, outs: list[Outbound]) -> dict[str, str]:
    """sovereign's templates for `outs`: each returns resources built once, so each poll costs
    sovereign only its own work. They carry their @type already: sovereign adds it in place after
    hashing, so a shared object without it would hash differently on the next poll and make Envoy
    apply everything again."""
    work.mkdir(parents=True, exist_ok=True)
    templates = {}
    for kind, items in sovereign_resources(outs).items():
        data = work / f"{kind}.json"
        data.write_text(json.dumps(items))
        templates[kind] = f"import json\nRESOURCES = json.load(open({str(data)!r}))\n\ndef call(*args, **kwargs):\n    return RESOURCES\n"
    return templates


def run_sovereign(work: Path, outs: list[Outbound], timeout: float) -> dict[str, Any]:
    with sovereign_server(install(), work, sovereign_templates(work, outs), free_port()) as started:
        admin_port = free_port()
        envoy = DirectEnvoy(rest_bootstrap(started.port, admin_port, listeners=True), work, "client")
        try:
            launched = boottime()
            envoy.start()
            assert envoy.proc is not None
            run = measure_envoy(
                "sovereign",
                len(outs),
                launched,
                envoy.proc.pid,
                f"http://127.0.0.1:{admin_port}",
                envoy.log_path,
                sample(outs),
                len(outs),
                envoy.alive,
                timeout,
            )
            return collect(run) | {"launcher": f"envoy --concurrency 1 (sovereign {SOVEREIGN_VERSION}, REST)"}
        finally:
            envoy.stop()


# ---------------------------------------------------------------------------- one N


def measure(n: int, shapes: list[str], runs: int, timeout: float, root: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    blocks = iter(random.sample(range(64, 250), len(SHAPES)))
    with ExitStack() as stack:
        upstreams = [stack.enter_context(Workload(f"upstream-{k}")) for k in range(UPSTREAMS)]
        clients = {s: outbounds(n, upstreams, next(blocks)) for s in shapes}
        ours = [s for s in shapes if s != "sovereign"]
        if ours:
            (root / "repo").mkdir()
            remote = ConfigRemote(root / "repo")
            files: dict[str, str | None] = {"mesh.yaml": "type: Mesh\nname: default\n"}
            for i in range(n):
                files[f"services/svc-{i}.yaml"] = service_dataplane(i, upstreams[i % len(upstreams)])
            for s in ours:
                files[f"clients/client-{s}.yaml"] = client_dataplane(f"client-{s}", s, free_port(), clients[s])
            t = time.perf_counter()
            sha = remote.push(files, f"{n} services")
            cp = ControlPlaneProcess(remote.bare, root / "state")
            stack.callback(cp.stop)
            cp.start()
            cp.wait_applied(sha, timeout=600)
            print(f"  N={n}: control plane serving {n} services after {time.perf_counter() - t:.1f} s", flush=True)
            concurrency_flag = run_dataplane_has_concurrency()
            if not concurrency_flag:
                print("  run-dataplane has no --concurrency: Envoy is started from `reconciler bootstrap` with --concurrency 1", flush=True)
        for r in range(runs):  # shapes interleaved: a busier minute on the machine weighs on each alike
            for shape in shapes:
                load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
                if shape == "sovereign":
                    result = run_sovereign(root / f"sovereign-{r + 1}", clients[shape], timeout)
                else:
                    result = run_ours(cp, root / f"envoys-{r + 1}", f"client-{shape}", shape, clients[shape], concurrency_flag, timeout)
                result["run"] = r + 1
                result["load"] = load
                results.append(result)
                print("  " + line(result), flush=True)
    return results


def line(r: dict[str, Any]) -> str:
    return (
        f"{r['shape']:>9} N={r['services']}: ready {r['ready_s']:.2f} s ({r['ready_from_launch_s']:.2f} s from launch, Envoy CPU {r['cpu_to_ready_s']:.2f} s), "
        f"CDS {r['cds_apply_ms']:.0f} ms, LDS {r['lds_apply_ms']:.0f} ms, RDS {r['rds_apply_ms']:.0f} ms in {r['rds_updates']} updates, "
        f"init {r['init_ms']:.0f} ms, allocated {r['memory_allocated_mib']:.0f} MiB, RSS {r['rss_mib']:.0f} MiB, "
        f"initial-fetch timeouts {r['init_fetch_timeout_lines']}, traffic {'ok' if r['traffic_ok'] else 'FAILED ' + json.dumps(r['traffic'])}"
    )


def _ms(value: float, updates: int) -> str:
    return f"{value:,.0f} ms ({updates:,})" if updates else "—"


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: for each (N, shape), the run with the median ready time."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["services"], r["shape"]), []).append(r)
    timing = [
        "| N | shape | ready | Envoy CPU until ready | CDS accepted | LDS accepted | Envoy's apply time (responses): CDS | EDS | LDS | RDS | initial fetch timed out | load (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cost = [
        "| N | shape | listeners (addresses) | active clusters | memory allocated | RSS | traffic (3 sampled outbounds) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (n, shape), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["ready_s"])
        m = runs[len(runs) // 2]
        ready = f"{m['ready_s']:.2f} s"
        if len(runs) > 1:
            ready += f" (median of {len(runs)}: " + ", ".join(f"{r['ready_s']:.1f}" for r in runs) + ")"
        timing.append(
            f"| {n:,} | {shape} | {ready} | {m['cpu_to_ready_s']:.2f} s | {m['cds_accepted_s']:.2f} s | {m['lds_accepted_s']:.2f} s | "
            f"{_ms(m['cds_apply_ms'], m['cds_updates'])} | {_ms(m['eds_apply_ms'], m['eds_updates'])} | "
            f"{_ms(m['lds_apply_ms'], m['lds_updates'])} | {_ms(m['rds_apply_ms'], m['rds_updates'])} | "
            f"{m['init_fetch_timeout_lines']:,} | {m['load']:.1f} |"
        )
        g = m["gauges"]
        cost.append(
            f"| {n:,} | {shape} | {g.get('listener_manager.total_listeners_active', 0):,} ({m['listener_addresses']:,}) | "
            f"{g.get('cluster_manager.active_clusters', 0):,} | {m['memory_allocated_mib']:,.0f} MiB | {m['rss_mib']:,.0f} MiB | "
            f"{'reach their upstream' if m['traffic_ok'] else 'FAILED'} |"
        )
    return "\n".join(timing) + "\n\n" + "\n".join(cost)


def main() -> None:
    # A SIGTERM unwinds like Ctrl-C: every `finally` stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    ap.add_argument("--runs", type=int, default=1, help="runs per shape (the table shows the median)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one Envoy may take to be ready")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (repositories, logs, bootstraps)")
    args = ap.parse_args()
    version = subprocess.run([find_envoy(), "--version"], capture_output=True, text=True).stdout.strip().split("version: ")[-1]
    print(f"Envoy {version}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}", flush=True)
    results = []
    for n in args.services:
        if args.keep:
            work = args.keep / f"n{n}"
            work.mkdir(parents=True)
            results += measure(n, args.shapes, args.runs, args.timeout, work)
            continue
        with tempfile.TemporaryDirectory(prefix=f"envoy-outbounds-{n}-") as tmp:
            results += measure(n, args.shapes, args.runs, args.timeout, Path(tmp))
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
