"""What Kuma's read API, the inspect endpoints and the GUI cost on a large mesh.

Serves a repository of N dataplanes (each with 10 outbounds, as bench/xds_scale.py makes them)
and times the reads a Kuma user or the GUI makes, each answered by the real `reconciler serve`
over loopback: median and worst of a few calls, and the answer's size.

    .venv/bin/python bench/api_reads.py --proxies 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.xds_scale import build_repo, start_cp  # noqa: E402

PATHS = (
    "/meshes/default/dataplanes?size=100",
    "/meshes/default/dataplanes/_overview?size=100",
    "/dataplanes?size=1000",
    "/meshes/default/meshtimeouts",
    "/global-insight",
    "/meshes/default/dataplanes/dp-7/_rules",
    "/meshes/default/dataplanes/dp-7/_config",
    "/meshes/default/meshtimeouts/mesh-timeout-all-default/_resources/dataplanes?size=100",
    "/gui/dataplanes",
    "/gui/policies",
    "/gui/live",
    "/gui/dataplanes/default/dp-7",
)


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        size = len(response.read())
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status}")
    return time.perf_counter() - started, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxies", type=int, default=1000)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare, _ = build_repo(root, args.proxies, args.services)
        cp, _, api_port = start_cp(bare, root)
        try:
            base = f"http://127.0.0.1:{api_port}"
            print(f"{args.proxies} dataplanes, {args.services} services; {args.calls} calls each (median / worst, answer size)")
            for path in PATHS:
                timed_get(base + path)  # the first call may build what later ones reuse
                times, size = [], 0
                for _ in range(args.calls):
                    t, size = timed_get(base + path)
                    times.append(t)
                print(f"  {path:<86} {statistics.median(times) * 1000:8.1f} ms {max(times) * 1000:8.1f} ms {size / 1024:9.1f} KiB")
        finally:
            cp.terminate()
            cp.wait(timeout=30)


if __name__ == "__main__":
    main()
