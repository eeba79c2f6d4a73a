"""The serve path's reconcile in-process, phase by phase, at N dataplanes.

Builds the repository of bench/xds_scale.py (one mesh, N dataplanes with one inbound and 10
outbounds each, 50 services), then runs what `reconciler serve` runs for a commit —
`Engine.evaluate` (load, validate) and `Engine.build` (build, generate) — and the cache `set`
of every changed proxy (push), without sockets. Then three commits:

  one-file   one dataplane of svc-7 moves to another address (its consumers see a new endpoint)
  global     one more endpoint of svc-0, which every proxy calls
  nothing    a commit that changes no resource (a README)

For each: seconds per phase (wall clock), CPU seconds of the whole reconcile (`cpu`: on a shared
machine the figure to compare), proxies regenerated, and the process's RSS (VmRSS, VmHWM).

With --serve: `reconciler serve` in its own process on the same repository: seconds from its
start to the commit applied, the phases of /status's lastAttempt, its RSS then (no proxy has
connected) and its peak RSS.

Usage: .venv/bin/python bench/reconcile_scale.py [--proxies 1000 10000] [--runs 1] [--profile FILE] [--serve]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from xds_scale import build_repo, dataplane, free_port, git, targets  # noqa: E402

from reconciler.reconcile import Engine  # noqa: E402
from reconciler.source.git import GitSource  # noqa: E402
from reconciler.xds.cache import ConfigCache  # noqa: E402


def rss_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reconcile(engine: Engine, cache: ConfigCache, profile: str | None) -> dict[str, float]:
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    evaluation = engine.evaluate("refs/heads/main")
    assert evaluation.report.valid, evaluation.report.errors[:3]
    build = engine.build(evaluation.snapshot, ())
    pushed = time.perf_counter()
    for node, resources in build.changed.items():
        cache.set(node, resources, evaluation.revision)
    for node in build.removed:
        cache.remove(node)
    engine.commit(build)
    push = time.perf_counter() - pushed
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile or "")
    return {
        **evaluation.timings,
        **build.timings,
        "push": push,
        "total": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "regenerated": len(build.changed),
    }


def commit(work: Path, message: str) -> None:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")


def measure(n: int, services: int, root: Path, profile: str | None) -> dict[str, dict[str, float]]:
    bare, work = build_repo(root, n, services)
    engine = Engine(GitSource(str(bare)))
    cache = ConfigCache()
    out: dict[str, dict[str, float]] = {}
    prof = (lambda case: f"{profile}.{case}") if profile else (lambda case: None)
    out["cold"] = reconcile(engine, cache, prof("cold"))
    gc.collect()
    rss, hwm = rss_mib()
    out["cold"] |= {"rss_mib": rss, "peak_rss_mib": hwm}

    moved = dataplane("dp-7", 7, f"svc-{7 % services}", targets(7, services)).replace("address: 10.0.0.7", "address: 10.9.9.7")
    (work / "dataplanes" / "dp-7.yaml").write_text(moved)
    commit(work, "dp-7 moves")
    out["one-file"] = reconcile(engine, cache, prof("one-file"))

    (work / "dataplanes" / "dp-new.yaml").write_text(dataplane("dp-new", n, "svc-0", targets(n, services)))
    commit(work, "one more svc-0 endpoint")
    out["global"] = reconcile(engine, cache, prof("global"))

    (work / "README.md").write_text("nothing for the mesh\n")
    commit(work, "readme")
    out["nothing"] = reconcile(engine, cache, prof("nothing"))
    gc.collect()
    out["end"] = dict(zip(("rss_mib", "peak_rss_mib"), rss_mib(), strict=True))
    return out


def serve_cold(n: int, services: int, root: Path) -> dict[str, float]:
    """`reconciler serve` as its own process: seconds from its start until /status shows the
    commit applied (and lastAttempt's phases), its RSS then and its peak RSS (VmHWM)."""
    bare, _ = build_repo(root, n, services)
    api_port = free_port()
    args = ["serve", "--repo", str(bare), "--state-dir", str(root / "state"), "--xds-port", str(free_port()), "--api-port", str(api_port)]
    args += ["--dataplane-auth", "none", "--xds-tls", "none"]
    started = time.perf_counter()
    with open(root / "cp.log", "w") as log:
        cp = subprocess.Popen([sys.executable, "-m", "reconciler", *args], stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    try:
        status: dict[str, Any] = {}
        while not status.get("lastAppliedRevision"):
            if cp.poll() is not None:
                raise RuntimeError(f"serve exited with {cp.returncode}; see {root / 'cp.log'}")
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/status", timeout=30) as r:
                    status = json.loads(r.read())
            except OSError:
                continue
        applied = time.perf_counter() - started
        stat = Path(f"/proc/{cp.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{cp.pid}/status").read_text().splitlines() if ":" in line)
        attempt = status.get("lastAttempt") or {}
        return {
            "start_to_applied_s": applied,
            "cpu_s": cpu,
            **{f"{k}_s": v for k, v in (attempt.get("phaseSeconds") or {}).items()},
            "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
            "peak_rss_mib": int(fields["VmHWM"].split()[0]) / 1024,
        }
    finally:
        cp.terminate()
        try:
            cp.wait(30)
        except subprocess.TimeoutExpired:
            cp.kill()
            cp.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1, help="runs per size in fresh processes would be fairer; here: in this process")
    ap.add_argument("--profile", help="write a cProfile of each case to PROFILE.<case>")
    ap.add_argument("--serve", action="store_true", help="measure `reconciler serve`'s cold start in its own process instead")
    args = ap.parse_args()
    if args.serve:
        for n in args.proxies:
            with tempfile.TemporaryDirectory() as tmp:
                figures = serve_cold(n, args.services, Path(tmp))
            print(f"{n:>6} serve: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
        return
    asyncio.set_event_loop(asyncio.new_event_loop())  # ConfigCache makes asyncio events
    results = {}
    for n in args.proxies:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(measure(n, args.services, Path(tmp), args.profile))
        median = {case: {k: statistics.median(r[case][k] for r in runs) for k in runs[0][case]} for case in runs[0]}
        results[n] = median
        for case, figures in median.items():
            print(
                f"{n:>6} {case:>9}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()),
                flush=True,
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
