"""What an observability policy costs the generator: render N proxies in-process, without and with
a mesh-wide MeshTrace (Zipkin, shared by proxies alike; OpenTelemetry, which names each proxy's
service and so builds each proxy's outbounds for it), MeshAccessLog and MeshMetric.

Each proxy has one inbound and 10 outbounds (as bench/xds_scale.py). Prints the seconds spent on
the views and on the Envoy config, best of --repeat runs (the generator's caches are cleared
between runs so every run starts cold).

Usage: .venv/bin/python bench/observability_cost.py [--proxies 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.xds_scale import dataplane  # noqa: E402
from reconciler.mesh.model import build_mesh_model  # noqa: E402
from reconciler.render import render  # noqa: E402
from reconciler.source.loader import load_file  # noqa: E402

SERVICES = 50

CASES = {
    "none": "",
    "MeshTrace Zipkin": """
type: MeshTrace
mesh: default
name: trace
spec:
  targetRef: {kind: Mesh}
  default:
    backends: [{type: Zipkin, zipkin: {url: "http://127.0.0.1:9411/api/v2/spans"}}]
""",
    "MeshTrace OpenTelemetry": """
type: MeshTrace
mesh: default
name: trace
spec:
  targetRef: {kind: Mesh}
  default:
    backends: [{type: OpenTelemetry, openTelemetry: {endpoint: "127.0.0.1:4317"}}]
""",
    "MeshAccessLog File": """
type: MeshAccessLog
mesh: default
name: logs
spec:
  targetRef: {kind: Mesh}
  from: [{targetRef: {kind: Mesh}, default: {backends: [{type: File, file: {path: /tmp/access.log}}]}}]
  to: [{targetRef: {kind: Mesh}, default: {backends: [{type: File, file: {path: /tmp/access.log}}]}}]
""",
    "MeshMetric Prometheus": """
type: MeshMetric
mesh: default
name: metrics
spec:
  targetRef: {kind: Mesh}
  default:
    backends: [{type: Prometheus, prometheus: {port: 5670, path: /metrics}}]
""",
}


def _clear_caches() -> None:
    import functools
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper):
            obj.cache_clear()
    from reconciler.xds.generate import outbound

    outbound._memo.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = [load_file("mesh.yaml", b"type: Mesh\nname: default\n")]
    base += [load_file(f"dp-{i}.yaml", dataplane(i, SERVICES).encode()) for i in range(args.proxies)]
    print(f"{args.proxies} proxies, 10 outbounds each; best of {args.repeat} cold runs")
    print(f"{'case':26} {'views s':>8} {'generate s':>11}")
    for name, policy in CASES.items():
        files = base + ([load_file("policy.yaml", policy.lstrip().encode())] if policy else [])
        problems = [p for f in files for p in f.problems if p.severity == "error"]
        assert not problems, problems[:3]
        resources = [r for f in files for r in f.resources]
        best: tuple[float, float] | None = None
        for _ in range(args.repeat):
            _clear_caches()
            model = build_mesh_model(resources)
            timings: dict[str, float] = {}
            started = time.perf_counter()
            render(model, timings=timings)
            assert time.perf_counter() - started > 0
            run = (timings["build"], timings["generate"])
            best = run if best is None or sum(run) < sum(best) else best
        assert best is not None
        print(f"{name:26} {best[0]:8.2f} {best[1]:11.2f}")


if __name__ == "__main__":
    main()
