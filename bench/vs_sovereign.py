"""The same N clusters (default 10,000) served to one real Envoy by this project and by sovereign.

sovereign is the Python xDS server on PyPI (pinned in bench/_sovereign.py); Envoy polls it over
REST (api_type REST) with refresh_delay 5 s, that of sovereign's own example bootstrap (Envoy
adds a jitter of up to one refresh_delay, so it polls every 5-10 s). It is installed on first use into a venv of its own under ~/.cache/mesh-reconciler; if it cannot be
installed or started, the script says why and exits 2.

What is served, to one Envoy (the same binary, run-dataplane's flags, --concurrency 1):

  ours       a bare git repository with a Mesh (mTLS off), N services, each a Dataplane with one
             inbound on 127.0.0.1:<its own port>, and one client Dataplane with N outbounds (each
             on its own loopback address and port) in Kuma's outbound shape (a listener per
             outbound; --shape compact: one listener bound to every outbound address, which at
             10,000 needs more than 20,000 open files when an outbound is added), so that the
             client's Envoy has N outbound clusters whose endpoints arrive by EDS. `reconciler
             serve` runs as its own process with --xds-tls none --dataplane-auth none; the Envoy gets its
             bootstrap from `reconciler bootstrap` and streams ADS (state of the world;
             --xds-mode delta: delta xDS).
  sovereign  the same N clusters, each STATIC with the same one endpoint inline, from a Python
             template whose data file is re-read as soon as it changes (sovereign's best case:
             its own file sources are polled every 30 s by default). No listeners.

Figures, per run (runs alternate between the two):

  server ready     the server process started -> ours: the commit applied (/status);
                   sovereign: /healthcheck answers
  Envoy clusters   Envoy started (with the server ready) -> every one of the N clusters active and
                   none warming (the first and last cluster polled every 0.1 s in /config_dump,
                   then the cluster_manager gauges)
  cold             server ready + Envoy clusters: from nothing to an Envoy holding the N clusters
  endpoint change  one service's endpoint port changed (ours: `git push` of that Dataplane;
                   sovereign: its data file replaced) -> Envoy's config_dump shows the new port
  new cluster      one service added (ours: its Dataplane and one more outbound in one push) ->
                   the cluster is active in Envoy with its endpoint. Envoy answers its admin
                   port on the thread that applies config, so this is also when Envoy is done
                   applying the full listener set (state of the world: all N+1 listeners) that
                   follows the cluster
  cluster warm     ours only: the same push -> Envoy ACKs the CDS update in our /status (Envoy
                   ACKs it once the new cluster is warm, with its endpoints), read from the
                   server, not from Envoy's busy admin port

Usage: .venv/bin/python bench/vs_sovereign.py [--clusters 10000] [--runs 3] [--updates 3] [--shape kuma|compact] [--xds-mode sotw|delta]
                                              [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _sovereign import (  # noqa: E402
    POLL_INTERVAL_S,
    SOVEREIGN_VERSION,
    SovereignUnavailable,
    clusters_template,
    install,
    rest_bootstrap,
    sovereign_server,
    static_cluster,
    write_clusters,
)
from _sovereign_envoy import Envoy, active_cluster_names, admin_ready, endpoint_ports, wait_clusters, wait_for  # noqa: E402
from _sovereign_repo import MeshRepo  # noqa: E402

from reconciler.dataplane.envoy_binary import find_envoy  # noqa: E402
from tests.e2e.harness import ControlPlaneProcess, free_port  # noqa: E402

GOAL_COLD_RATIO = 0.7  # issue 16: our cold convergence at most 0.7 times sovereign's
SERVICE_PORT_BASE = 30000  # endpoint ports: nothing listens there, and no traffic is sent
CHANGED_PORT_BASE = 50000


def service(i: int) -> str:
    return f"svc-{i}"


def run_ours(n: int, updates: int, work: Path, timeout: float, shape: str, xds_mode: str) -> dict[str, Any]:
    repo = MeshRepo(work / "repo", n, SERVICE_PORT_BASE, shape)
    cp = ControlPlaneProcess(repo.remote.bare, work / "state", xds_tls=False, dataplane_auth=False)
    envoy: Envoy | None = None
    try:
        launched = time.monotonic()
        cp.start(wait=False)
        cp.wait_applied(repo.head, timeout=timeout)
        server_ready = time.monotonic() - launched
        admin_port = free_port()
        envoy = Envoy(repo.bootstrap(cp, admin_port, xds_mode), work, "client")
        admin = envoy.admin
        envoy.start()
        seen = wait_clusters(envoy, n, [service(0), service(n - 1)], timeout)
        result = cold_figures(envoy, server_ready, seen.at - envoy.launched, seen.slowest_read_s, n, timeout)

        def change(j: int) -> Callable[[], bool]:
            port = CHANGED_PORT_BASE + j
            repo.push({repo.service_path(n // 2): repo.service_dataplane(n // 2, port)}, f"svc-{n // 2}: port {port}")
            return lambda: endpoint_ports(admin, service(n // 2)) == {port}

        warm: list[float] = []

        def add(j: int) -> Callable[[], bool]:
            i, port = n + j, SERVICE_PORT_BASE + n + j
            repo.push(repo.add_service(i, port), f"svc-{i}")
            threading.Thread(target=lambda: warm.append(cds_acked(cp, repo.head, timeout)), daemon=True).start()
            return lambda: endpoint_ports(admin, service(i)) == {port}

        result |= update_figures(change, add, updates, timeout)
        result["new_cluster_warm_s"] = warm
        return result | {"server": "ours", "launcher": f"reconciler bootstrap + envoy --concurrency 1, ADS ({xds_mode}), {shape} shape"}
    finally:
        if envoy is not None:
            envoy.stop()
        cp.stop()


def cds_acked(cp: ControlPlaneProcess, head: str, timeout: float) -> float:
    """Seconds from now until our /status shows the client's CDS update of commit `head` ACKed."""
    started = time.monotonic()

    def acked() -> bool:
        status = cp.status() or {}
        cds = status.get("proxies", {}).get("default.client", {}).get("types", {}).get("CDS", {})
        return str(cds.get("ackedRevision", "")).rpartition(":")[2] == head

    return wait_for(acked, timeout, interval=0.05, what="CDS ACK") - started


def run_sovereign(exe: Path, n: int, updates: int, work: Path, timeout: float) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    data = work / "clusters.json"
    clusters = [static_cluster(service(i), SERVICE_PORT_BASE + i) for i in range(n)]
    write_clusters(data, clusters)
    with sovereign_server(exe, work, {"clusters": clusters_template(data)}, free_port()) as started:
        server_ready = started.healthy - started.launched
        envoy = Envoy(rest_bootstrap(started.port, free_port()), work, "client")
        try:
            envoy.start()
            seen = wait_clusters(envoy, n, [service(0), service(n - 1)], timeout)
            result = cold_figures(envoy, server_ready, seen.at - envoy.launched, seen.slowest_read_s, n, timeout)

            def change(j: int) -> Callable[[], bool]:
                port = CHANGED_PORT_BASE + j
                clusters[n // 2] = static_cluster(service(n // 2), port)
                write_clusters(data, clusters)
                return lambda: endpoint_ports(envoy.admin, service(n // 2)) == {port}

            def add(j: int) -> Callable[[], bool]:
                i, port = n + j, SERVICE_PORT_BASE + n + j
                clusters.append(static_cluster(service(i), port))
                write_clusters(data, clusters)
                return lambda: endpoint_ports(envoy.admin, service(i)) == {port}

            result |= update_figures(change, add, updates, timeout)
        finally:
            envoy.stop()
    return result | {"server": "sovereign", "launcher": f"envoy --concurrency 1, REST polling every {POLL_INTERVAL_S:g} s"}


def cold_figures(envoy: Envoy, server_ready: float, envoy_clusters: float, slowest_read: float, n: int, timeout: float) -> dict[str, Any]:
    # Envoy settles (ours: its listeners too, after the clusters) before it is asked for the
    # names of every cluster, and before the updates are timed.
    settled = wait_for(lambda: admin_ready(envoy.admin), timeout, interval=0.1, what="Envoy /ready LIVE")
    names = active_cluster_names(envoy.admin)
    missing = [service(i) for i in range(n) if service(i) not in names]
    if missing:
        raise AssertionError(f"{len(missing)} clusters missing in Envoy, e.g. {missing[:3]}")
    return {
        "server_ready_s": server_ready,
        "envoy_clusters_s": envoy_clusters,
        "cold_s": server_ready + envoy_clusters,
        "clusters_active": len(names),
        "slowest_probe_s": slowest_read,
        "envoy_ready_s": settled - envoy.launched,
    }


def update_figures(
    change: Callable[[int], Callable[[], bool]], add: Callable[[int], Callable[[], bool]], updates: int, timeout: float
) -> dict[str, Any]:
    """Each update is made, then timed until Envoy has it; the two kinds alternate."""
    out: dict[str, list[float]] = {"endpoint_change_s": [], "new_cluster_s": []}
    for j in range(updates):
        for key, make in (("endpoint_change_s", change), ("new_cluster_s", add)):
            check = make(j)
            started = time.monotonic()
            out[key].append(wait_for(check, timeout, what=key) - started)
    return dict(out)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(results: list[dict[str, Any]], n: int) -> str:
    by: dict[str, list[dict[str, Any]]] = {"ours": [], "sovereign": []}
    for r in results:
        by[r["server"]].append(r)
    rows = [
        "| server | cold: server ready + Envoy has every cluster | server ready | Envoy: start -> clusters "
        "| endpoint change -> Envoy has it | new cluster -> Envoy has it | runs | how |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    med: dict[str, dict[str, float]] = {}
    for name, runs in by.items():
        if not runs:
            continue
        m = {k: median([r[k] for r in runs]) for k in ("cold_s", "server_ready_s", "envoy_clusters_s")} | {
            k: median([v for r in runs for v in r[k]]) for k in ("endpoint_change_s", "new_cluster_s")
        }
        med[name] = m
        colds = ", ".join(f"{r['cold_s']:.1f}" for r in runs)
        ups = sum(len(r["endpoint_change_s"]) for r in runs)
        rows.append(
            f"| {name} | {m['cold_s']:.2f} s ({colds}) | {m['server_ready_s']:.2f} s | {m['envoy_clusters_s']:.2f} s | "
            f"{m['endpoint_change_s'] * 1000:,.0f} ms | {m['new_cluster_s'] * 1000:,.0f} ms | {len(runs)} ({ups} updates of each kind) | {runs[0]['launcher']} |"
        )
    text = "\n".join(rows)
    if "ours" in med and "sovereign" in med:
        ratio = med["ours"]["cold_s"] / med["sovereign"]["cold_s"]
        worst_update = max(med["ours"]["endpoint_change_s"], med["ours"]["new_cluster_s"])
        cold_ok, update_ok = ratio <= GOAL_COLD_RATIO, worst_update < POLL_INTERVAL_S
        text += (
            f"\n\nN = {n:,} clusters. Cold convergence, ours / sovereign: {ratio:.2f} (goal <= {GOAL_COLD_RATIO}: "
            f"{'met' if cold_ok else 'NOT met'}). Our slower update (median) {worst_update * 1000:,.0f} ms against sovereign's "
            f"poll interval {POLL_INTERVAL_S:g} s (goal: under it: {'met' if update_ok else 'NOT met'}). Update ratios, ours / sovereign: "
            f"endpoint change {med['ours']['endpoint_change_s'] / med['sovereign']['endpoint_change_s']:.2f}, "
            f"new cluster {med['ours']['new_cluster_s'] / med['sovereign']['new_cluster_s']:.2f}."
        )
    return text


def line(r: dict[str, Any]) -> str:
    ups = " ".join(f"{v * 1000:.0f}" for v in r["endpoint_change_s"])
    adds = " ".join(f"{v * 1000:.0f}" for v in r["new_cluster_s"])
    warm_s = r.get("new_cluster_warm_s")
    warm = f", new cluster warm (CDS ACKed) ms [{' '.join(f'{v * 1000:.0f}' for v in warm_s)}]" if warm_s else ""
    return (
        f"{r['server']:>9} run {r['run']}: cold {r['cold_s']:.2f} s (server ready {r['server_ready_s']:.2f} s + Envoy clusters "
        f"{r['envoy_clusters_s']:.2f} s; slowest probe {r['slowest_probe_s']:.2f} s; /ready {r['envoy_ready_s']:.1f} s after Envoy's start), "
        f"endpoint change ms [{ups}], new cluster ms [{adds}]{warm}, load {r['load']:.1f}"
    )


def versions() -> dict[str, str]:
    envoy = subprocess.run([find_envoy(), "--version"], capture_output=True, text=True).stdout.strip().split("version: ")[-1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return {"envoy": envoy, "sovereign": SOVEREIGN_VERSION, "mesh-reconciler": commit}


def measure(exe: Path, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    results = []
    for r in range(1, args.runs + 1):
        for server in ("ours", "sovereign"):  # alternated: a busier minute on the shared machine weighs on both
            load = os.getloadavg()[0]
            work = root / f"{server}-{r}"
            if server == "ours":
                result = run_ours(args.clusters, args.updates, work, args.timeout, args.shape, args.xds_mode)
            else:
                result = run_sovereign(exe, args.clusters, args.updates, work, args.timeout)
            result |= {"run": r, "load": load, "clusters": args.clusters}
            results.append(result)
            print("  " + line(result), flush=True)
    return results


def main() -> int:
    # A SIGTERM unwinds like Ctrl-C: every `finally` stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clusters", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3, help="cold starts of each server (the table shows medians)")
    ap.add_argument("--updates", type=int, default=3, help="updates of each kind per run")
    ap.add_argument("--shape", choices=("kuma", "compact"), default="kuma", help="our client's outbound shape (docs/xds.md)")
    ap.add_argument("--xds-mode", choices=("sotw", "delta"), default="sotw", help="our client's ADS flavour (state of the world or delta)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds any one step may take")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (repositories, logs, bootstraps)")
    args = ap.parse_args()
    try:
        exe = install()
    except SovereignUnavailable as e:
        print(f"sovereign=={SOVEREIGN_VERSION} cannot be installed here, so there is nothing to compare with:\n{e}", file=sys.stderr)
        return 2
    info = versions()
    print(
        f"Envoy {info['envoy']}, sovereign {info['sovereign']}, mesh-reconciler {info['mesh-reconciler']}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, {args.clusters:,} clusters",
        flush=True,
    )
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            results = measure(exe, args, args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="vs-sovereign-") as tmp:
                results = measure(exe, args, Path(tmp))
    except SovereignUnavailable as e:
        print(f"sovereign=={SOVEREIGN_VERSION} could not be run here:\n{e}", file=sys.stderr)
        return 2
    text = summary(results, args.clusters)
    print()
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"versions": info, "poll_interval_s": POLL_INTERVAL_S, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
