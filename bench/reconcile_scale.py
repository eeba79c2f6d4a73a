"""The serve path's reconcile in-process, phase by phase, at N dataplanes.

Builds the repository of bench/xds_scale.py (one mesh, N dataplanes with one inbound and 10
outbounds each, 50 services), then runs what `reconciler serve` runs for a commit —
`Engine.evaluate` (load, validate) and `Engine.build` (build, generate) — and the cache `set`
of every changed proxy (push), without sockets. Then three commits:

  one-file   one dataplane of svc-7 moves to another address (its consumers see a new endpoint)
  global     one more endpoint of svc-0, which every proxy calls
  nothing    a commit that changes no resource (a README)

For each: seconds per phase, proxies regenerated, and the process's RSS (VmRSS, VmHWM).

Usage: .venv/bin/python bench/reconcile_scale.py [--proxies 1000 10000] [--runs 1] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from xds_scale import build_repo, dataplane, git  # noqa: E402

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
    started = time.perf_counter()
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
    return {**evaluation.timings, **build.timings, "push": push, "total": time.perf_counter() - started, "regenerated": len(build.changed)}


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

    moved = dataplane(7, services).replace("address: 10.0.0.7", "address: 10.9.9.7")
    (work / "dataplanes" / "dp-7.yaml").write_text(moved)
    commit(work, "dp-7 moves")
    out["one-file"] = reconcile(engine, cache, prof("one-file"))

    (work / "dataplanes" / "dp-new.yaml").write_text(dataplane(n, services, service="svc-0").replace(f"dp-{n}", "dp-new"))
    commit(work, "one more svc-0 endpoint")
    out["global"] = reconcile(engine, cache, prof("global"))

    (work / "README.md").write_text("nothing for the mesh\n")
    commit(work, "readme")
    out["nothing"] = reconcile(engine, cache, prof("nothing"))
    gc.collect()
    out["end"] = dict(zip(("rss_mib", "peak_rss_mib"), rss_mib(), strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1, help="runs per size in fresh processes would be fairer; here: in this process")
    ap.add_argument("--profile", help="write a cProfile of each case to PROFILE.<case>")
    args = ap.parse_args()
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
