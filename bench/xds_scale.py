"""xDS at scale: N simulated proxies on real gRPC streams against `reconciler serve`.

Builds a bare repository with one mesh of N dataplanes; each has one inbound and outbounds to
10 services (svc-0 among them). Starts the control plane as its own process and measures, per N:

  cold        process start → /readyz answers 200 (the first reconcile), and the reconcile's
              phase timings from /metrics
  rss0        server RSS once ready, before any proxy connects
  connect     N proxies, each on its own TCP connection (bench/_ads_clients.py, in several
              processes), open their streams at once → the last one has ACKed a full config;
              the streams the server ended (by status code) and the clients' retries
  global      a commit adds a service svc-new and an outbound to it on every dataplane:
              `git push` returned → each proxy has ACKed its endpoints and new listeners (p50/p99)
  one         a commit adds an endpoint to svc-7: push → each consumer of svc-7 has ACKed it;
              every other proxy must have been sent nothing
  policy      a commit adds one Mesh-wide MeshTimeout (one file; every proxy's clusters
              change): push → each proxy has ACKed its new clusters and the endpoints that
              re-warm them. Unlike `global`, whose commit rewrites all N dataplane files, this
              measures the fan-out alone
  per proxy   (RSS with every proxy connected − rss0) / N

then checks correctness: a fresh control plane started cold on the final commit serves freshly
connected proxies exactly the resource versions the benchmark's proxies hold (non-zero exit on any
mismatch). `--delta` runs delta xDS clients instead of SotW ones.

  idle        with every proxy connected and nothing committed, over `--idle` seconds (30): the
              server's CPU (/proc utime+stime), its builds and the xDS responses it sends
  --hds       each proxy also opens an HDS stream on its connection, as Envoy does
              (bench/_hds_clients.py), and reports its endpoints healthy every `interval` (serve's
              --hds-interval, 5 s); one Dataplane in ten declares a `serviceProbe`. Memory per
              proxy is read once every proxy has its specifier and has sent a report

Usage: .venv/bin/python bench/xds_scale.py [--proxies 100 1000 10000] [--delta] [--hds] [--idle S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ads_clients import Workers
from _control_plane import ControlPlane, free_port, proc_stats  # noqa: F401  # free_port: bench/reconcile_scale.py imports it from here

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import mesh_timeout

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
OUTBOUNDS = 10
ONE_SERVICE = "svc-7"
MESH_TIMEOUT = mesh_timeout("bench-timeout", "idleTimeout: 20s\nconnectionTimeout: 3s")
"""A change of one file that every proxy sees: its outbound clusters change. Its name
sorts before Kuma's default MeshTimeout (mesh-timeout-all-default), which wins a tie otherwise."""
CONNECT_TIMEOUT = 180.0
PROBED = 10
"""With --hds, one Dataplane in PROBED declares a serviceProbe."""
HDS_KEYS = ("hds_specifiers", "hds_reports", "hds_with_workload_checks", "hds_retries")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def targets(i: int, services: int) -> list[str]:
    return ["svc-0"] + [f"svc-{(i + k) % (services - 1) + 1}" for k in range(1, OUTBOUNDS)]


def dataplane(name: str, i: int, service: str, outbound: list[str], *, probe: bool = False) -> str:
    lines = [
        "type: Dataplane",
        "mesh: default",
        f"name: {name}",
        "networking:",
        f"  address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "  inbound:",
        "    - port: 8080",
        "      servicePort: 9090",
        *(["      serviceProbe:", "        interval: 1s", "        tcp: {}"] if probe else []),
        "      tags:",
        f"        kuma.io/service: {service}",
        "        kuma.io/protocol: http",
    ]
    if outbound:
        lines.append("  outbound:")
    for n, target in enumerate(outbound):
        lines += [f"    - port: {20000 + n}", "      tags:", f"        kuma.io/service: {target}"]
    return "\n".join(lines) + "\n"


def write_dataplanes(work: Path, proxies: int, services: int, extra: list[str], *, probes: bool = False) -> None:
    """With `probes`, every tenth Dataplane's inbound declares a `serviceProbe` (an HDS workload check)."""
    for i in range(proxies):
        text = dataplane(f"dp-{i}", i, f"svc-{i % services}", targets(i, services) + extra, probe=probes and i % PROBED == 0)
        (work / "dataplanes" / f"dp-{i}.yaml").write_text(text)


def commit(work: Path, message: str) -> None:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")


def build_repo(root: Path, proxies: int, services: int, *, probes: bool = False) -> tuple[Path, Path]:
    bare, work = root / "config.git", root / "work"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "init", "-q", "-b", "main", str(work))
    (work / "mesh.yaml").write_text("type: Mesh\nname: default\n")
    (work / "dataplanes").mkdir()
    write_dataplanes(work, proxies, services, [], probes=probes)
    git(work, "remote", "add", "origin", str(bare))
    commit(work, "seed")
    return bare, work


def wait_all(workers: Workers, proxies: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = workers.ask("status")
        synced = sorted(t for s in status for t in s["synced"])
        if len(synced) >= proxies or time.monotonic() > deadline:
            ended: dict[str, int] = {}
            for s in status:
                for code, n in s["ended"].items():
                    ended[code] = ended.get(code, 0) + n
            unsynced = [u for s in status for u in s["unsynced"]]
            hds_ended: dict[str, int] = {}
            for s in status:
                for code, n in s["hds_ended"].items():
                    hds_ended[code] = hds_ended.get(code, 0) + n
            return {
                **{k: sum(s[k] for s in status) for k in HDS_KEYS},
                "hds_ended": hds_ended,
                "synced": synced,
                "retries": sum(s["retries"] for s in status),
                "ended": ended,
                "unsynced": unsynced,
                "messages": (sum(s["responses"] for s in status), sum(s["requests"] for s in status)),
            }
        time.sleep(0.5)


def pushed(
    workers: Workers, work: Path, message: str, ids: list[int] | None, change: dict[str, int], listeners: bool, *, clusters: bool = False
) -> dict[str, Any]:
    """Commit and push; per targeted proxy, seconds from the push to its ACK of the change."""
    workers.ask("clear")
    workers.ask("target", {"ids": ids, "endpoints_plus": change, "listeners": listeners, "clusters": clusters})
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")
    t0 = time.time()
    deadline = time.monotonic() + 300
    while True:
        reached = workers.ask("reached")
        waiting = sum(r["waiting"] for r in reached)
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    times = sorted(t - t0 for r in reached for t in r["times"])
    time.sleep(2)  # anything else the server would send has gone out by now
    others = [i for r in workers.ask("pushed") for i in r]
    pct = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 3) if times else None  # noqa: E731
    return {
        "reached": len(times),
        "waiting": waiting,
        "p50_s": pct(0.5),
        "p99_s": pct(0.99),
        "max_s": pct(1.0),
        "others_pushed": len(others),
    }


def since(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Seconds per reconcile phase between two readings of the sums (the reconciles in between)."""
    return {k: round(v - before.get(k, 0.0), 3) for k, v in now.items()}


def per_proxy(now: tuple[int, int], before: tuple[int, int], proxies: int) -> dict[str, float]:
    """Responses and requests per proxy between two counts of the clients' messages."""
    return {"responses": round((now[0] - before[0]) / proxies, 2), "requests": round((now[1] - before[1]) / proxies, 2)}


def processes_for(proxies: int) -> int:
    return max(1, min(4, proxies // 1000))


def connect(address: str, proxies: int, delta: bool, hds: bool = False) -> tuple[Workers, dict[str, Any], float]:
    workers = Workers(address, proxies, processes_for(proxies), delta=delta, hds=hds)
    workers.ask("status")  # the processes are up and have built their clients
    started = time.time()
    workers.ask("connect")
    result = wait_all(workers, proxies, CONNECT_TIMEOUT)
    connect_s = (result["synced"][-1] - started) if len(result["synced"]) == proxies else float("nan")
    return workers, result, connect_s


def settle_hds(workers: Workers, proxies: int, timeout: float) -> dict[str, Any]:
    """Wait until every proxy has its specifier and has sent a health report."""
    deadline = time.monotonic() + timeout
    while True:
        status = wait_all(workers, 0, 0)
        if (status["hds_specifiers"] >= proxies and status["hds_reports"] >= proxies) or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def idle(cp: ControlPlane, workers: Workers, proxies: int, seconds: float) -> dict[str, Any]:
    """All connected, nothing committed: the server's CPU, builds and xDS responses over `seconds`."""
    cpu0, builds0, pushes0 = proc_stats(cp.proc.pid)[0], cp.builds(), cp.metric("reconciler_xds_pushes_total")
    status0 = wait_all(workers, 0, 0)
    time.sleep(seconds)
    cpu1, builds1, pushes1 = proc_stats(cp.proc.pid)[0], cp.builds(), cp.metric("reconciler_xds_pushes_total")
    status1 = wait_all(workers, 0, 0)
    return {
        "seconds": seconds,
        "cpu_pct": round((cpu1 - cpu0) / seconds * 100, 1),
        "builds": builds1 - builds0,
        "xds_responses_sent": int(pushes1 - pushes0),
        "hds_reports": status1["hds_reports"] - status0["hds_reports"],
        "hds_specifiers": status1["hds_specifiers"] - status0["hds_specifiers"],
    }


def measure(proxies: int, services: int, root: Path, delta: bool, hds: bool = False, idle_s: float = 30.0) -> dict[str, Any]:
    bare, work = build_repo(root, proxies, services, probes=hds)
    cp = ControlPlane(bare, root / "state", root / "cp.log")
    out: dict[str, Any] = {
        "proxies": proxies,
        "mode": ("delta" if delta else "sotw") + ("+hds" if hds else ""),
        "cold_s": round(cp.cold_s, 2),
        "cold_phases_s": cp.phases(),
    }
    workers = None
    try:
        time.sleep(1)
        cpu0, rss0 = proc_stats(cp.proc.pid)
        out["rss_before_connect_mib"] = round(rss0)
        builds0 = cp.builds()
        workers, conn, out["connect_s"] = connect(f"127.0.0.1:{cp.xds_port}", proxies, delta, hds)
        out.update(synced=len(conn["synced"]), retries=conn["retries"], streams_ended=conn["ended"], unsynced=conn["unsynced"])
        seen = conn["messages"]
        out["per_proxy_connect"] = per_proxy(seen, (0, 0), proxies)
        time.sleep(2)
        cpu1, rss1 = proc_stats(cp.proc.pid)
        out["cpu_connect_s"] = round(cpu1 - cpu0, 2)
        if hds:
            started = time.time()
            status = settle_hds(workers, proxies, 60)
            out["hds_settle_s"] = round(time.time() - started, 2)
            out["hds"] = {k: status[k] for k in (*HDS_KEYS, "hds_ended")}
            time.sleep(2)
            rss1 = proc_stats(cp.proc.pid)[1]
        out["rss_connected_mib"] = round(rss1)
        out["kib_per_connected_proxy"] = round((rss1 - rss0) * 1024 / proxies, 1)
        out["builds_while_connecting"] = cp.builds() - builds0
        out["idle"] = idle(cp, workers, proxies, idle_s)
        cpu1 = proc_stats(cp.proc.pid)[0]

        (work / "dataplanes" / "svc-new.yaml").write_text(dataplane("svc-new", proxies + 1, "svc-new", []))
        write_dataplanes(work, proxies, services, ["svc-new"], probes=hds)
        out["global_push"] = pushed(workers, work, "svc-new, called by every proxy", None, {"svc-new": 1}, True)
        cpu2, _ = proc_stats(cp.proc.pid)
        seen, before = wait_all(workers, 0, 0)["messages"], seen
        out["per_proxy_global_push"] = per_proxy(seen, before, proxies)
        out["cpu_global_push_s"] = round(cpu2 - cpu1, 2)
        mark = cp.phases()
        out["global_push"]["phases_s"] = since(mark, out["cold_phases_s"])

        consumers = [i for i in range(proxies) if ONE_SERVICE in targets(i, services)]
        (work / "dataplanes" / "extra.yaml").write_text(dataplane("extra", proxies + 2, ONE_SERVICE, []))
        out["one_service_push"] = pushed(workers, work, f"one more {ONE_SERVICE} endpoint", consumers, {ONE_SERVICE: 1}, False)
        out["one_service_push"]["consumers"] = len(consumers)
        mark, before_phases = cp.phases(), mark
        out["one_service_push"]["phases_s"] = since(mark, before_phases)
        out["cpu_one_service_push_s"] = round(proc_stats(cp.proc.pid)[0] - cpu2, 2)
        seen, before = wait_all(workers, 0, 0)["messages"], seen
        out["per_consumer_one_service_push"] = per_proxy(seen, before, len(consumers))

        cpu3 = proc_stats(cp.proc.pid)[0]
        (work / "policies").mkdir(exist_ok=True)
        (work / "policies" / "timeout.yaml").write_text(MESH_TIMEOUT)
        out["mesh_policy_push"] = pushed(workers, work, "a Mesh-wide MeshTimeout", None, {}, False, clusters=True)
        out["cpu_mesh_policy_push_s"] = round(proc_stats(cp.proc.pid)[0] - cpu3, 2)
        out["mesh_policy_push"]["phases_s"] = since(cp.phases(), mark)
        seen, before = wait_all(workers, 0, 0)["messages"], seen
        out["per_proxy_mesh_policy_push"] = per_proxy(seen, before, proxies)
        out["streams_ended"] = wait_all(workers, 0, 0)["ended"]
        held = {i: d for r in workers.ask("digest") for i, d in r.items()}
        out["phases_s"] = cp.phases()
    finally:
        if workers is not None:
            workers.close()
        cp.stop()
    out["mismatches"] = check(bare, root, proxies, delta, held)
    return out


def check(bare: Path, root: Path, proxies: int, delta: bool, held: dict[int, Any]) -> list[int]:
    """Proxies whose resource versions differ from what a fresh, cold control plane on the
    final commit serves to freshly connected proxies."""
    cp = ControlPlane(bare, root / "fresh-state", root / "fresh-cp.log")
    workers = None
    try:
        workers, _, _ = connect(f"127.0.0.1:{cp.xds_port}", proxies, delta)
        fresh = {i: d for r in workers.ask("digest") for i, d in r.items()}
    finally:
        if workers is not None:
            workers.close()
        cp.stop()
    return sorted(i for i in range(proxies) if held.get(i) != fresh.get(i) or not fresh.get(i))


def report(results: list[dict[str, Any]]) -> None:
    rows = [
        ("reconcile from cold (start → ready)", lambda r: f"{r['cold_s']:.2f} s"),
        ("server RSS before any proxy connects", lambda r: f"{r['rss_before_connect_mib']} MiB"),
        ("connect + full sync", lambda r: f"{r['connect_s']:.2f} s ({r['synced']} synced, {r['retries']} retries)"),
        ("streams ended by the server (codes)", lambda r: json.dumps(r["streams_ended"])),
        ("global push → all ACK p50 / p99", lambda r: f"{r['global_push']['p50_s']} / {r['global_push']['p99_s']} s"),
        ("one service → consumers ACK p50 / p99", lambda r: f"{r['one_service_push']['p50_s']} / {r['one_service_push']['p99_s']} s"),
        ("  other proxies pushed", lambda r: str(r["one_service_push"]["others_pushed"])),
        (
            "Mesh-wide policy (one file) → all ACK p50 / p99",
            lambda r: f"{r['mesh_policy_push']['p50_s']} / {r['mesh_policy_push']['p99_s']} s",
        ),
        ("memory per connected proxy", lambda r: f"{r['kib_per_connected_proxy']} KiB"),
        ("builds while connecting", lambda r: str(r["builds_while_connecting"])),
        (
            "idle, all connected: server CPU, builds, xDS responses",
            lambda r: (
                f"{r['idle']['cpu_pct']}% of a core, {r['idle']['builds']}, {r['idle']['xds_responses_sent']} (over {r['idle']['seconds']:g} s)"
            ),
        ),
        ("  HDS reports in that time", lambda r: str(r["idle"]["hds_reports"]) if "hds" in r else "-"),
        ("mismatches with a cold start", lambda r: str(len(r["mismatches"]))),
    ]
    print("| figure | " + " | ".join(f"{r['proxies']:,} {r['mode']}" for r in results) + " |")
    print("| --- |" + " --- |" * len(results))
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    for a, b in zip(results, results[1:], strict=False):
        growth = {k: round(b[k] / a[k], 2) for k in ("cold_s", "connect_s", "rss_before_connect_mib") if a.get(k)}
        growth["global_p99"] = round((b["global_push"]["p99_s"] or 0) / (a["global_push"]["p99_s"] or 1), 2)
        print(f"growth {a['proxies']:,} → {b['proxies']:,}: {growth}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--delta", action="store_true", help="delta xDS clients instead of state of the world")
    ap.add_argument("--hds", action="store_true", help="each proxy also holds an HDS stream and reports health (bench/_hds_clients.py)")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds to watch the server with every proxy connected and nothing changing")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the control plane and the clients too
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server and the clients inherit it
    if hard < 2 * max(args.proxies) + 1000:
        print(f"warning: open-file limit {hard} is low for {max(args.proxies)} proxies", file=sys.stderr)
    results = []
    for n in args.proxies:
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(n, args.services, Path(tmp), args.delta, args.hds, args.idle)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "mismatches"} | {"mismatches": len(r["mismatches"])}), flush=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    bad = [r for r in results if r["mismatches"] or r["synced"] < r["proxies"]]
    for r in bad:
        print(
            f"{r['proxies']} proxies: {len(r['mismatches'])} mismatches (first: {r['mismatches'][:5]}), {r['synced']} synced",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
