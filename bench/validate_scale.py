"""Validation of a large configuration repository: first read, and re-read after one change.

Builds a real git repository with N files (default 5,000: dataplanes and policies across a
few meshes), then measures with the same objects `reconciler serve` uses:

  first      GitSource.snapshot + validate of HEAD, nothing cached
  one-change a commit that edits one file; snapshot + validate of the new HEAD

Usage: .venv/bin/python bench/validate_scale.py [--files 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.source.git import GitSource
from reconciler.validate import ResourceValidator, validate

ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}


def dataplane(i: int) -> str:
    return f"""\
type: Dataplane
name: dp-{i}
mesh: mesh-{i % 4}
networking:
  address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}
  inbound:
    - port: 8080
      servicePort: 9090
      tags:
        kuma.io/service: svc-{i % 200}
        kuma.io/protocol: http
        version: v{i % 3}
  outbound:
    - port: 20001
      tags:
        kuma.io/service: svc-{(i + 1) % 200}
"""


def policy(i: int) -> str:
    return f"""\
type: MeshTimeout
name: timeout-{i}
mesh: mesh-{i % 4}
spec:
  targetRef:
    kind: MeshSubset
    tags:
      kuma.io/service: svc-{i % 200}
  to:
    - targetRef:
        kind: MeshService
        name: svc-{(i + 7) % 200}
      default:
        idleTimeout: {i % 50 + 10}s
        http:
          requestTimeout: {i % 9 + 1}s
"""


def build(root: Path, files: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    for m in range(4):
        (root / "meshes").mkdir(exist_ok=True)
        (root / "meshes" / f"mesh-{m}.yaml").write_text(f"type: Mesh\nname: mesh-{m}\n")
    for i in range(files - 4):
        kind, make = ("dataplanes", dataplane) if i % 2 == 0 else ("policies", policy)
        d = root / kind / f"team-{i % 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{kind[:-1]}-{i}.yaml").write_text(make(i))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-q", "-m", "seed"], cwd=root, check=True, env=ENV)


def change_one(root: Path, n: int) -> None:
    target = root / "policies" / "team-1" / "policie-1.yaml"
    target.write_text(policy(1).replace("idleTimeout: 11s", f"idleTimeout: {100 + n}s"))
    subprocess.run(["git", "commit", "-q", "-am", f"change {n}"], cwd=root, check=True, env=ENV)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        t = time.perf_counter()
        build(root, args.files)
        print(f"built {args.files} files in {time.perf_counter() - t:.1f}s")
        firsts, cpus, changes = [], [], []
        for _ in range(args.repeat):
            source, memo = GitSource(root), ResourceValidator()
            t, c = time.perf_counter(), time.process_time()
            report = validate(source.snapshot("HEAD"), memo)
            firsts.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            assert report.valid, [p.render() for p in report.errors[:5]]
        for n in range(args.repeat):
            change_one(root, n)
            parsed_before, computed_before = source.parsed_blobs, memo.computed
            t = time.perf_counter()
            report = validate(source.snapshot("HEAD"), memo)
            changes.append(time.perf_counter() - t)
            assert report.valid
            assert source.parsed_blobs - parsed_before == 1 and memo.computed - computed_before == 1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"resources: {report.resources}")
        print(
            f"first read + validate: median {statistics.median(firsts) * 1000:.0f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in firsts)})"
        )
        # CPU time moves less than wall time when other work shares the machine.
        print(
            f"  of which CPU:         median {statistics.median(cpus) * 1000:.0f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in cpus)})"
        )
        print(
            f"one file changed:      median {statistics.median(changes) * 1000:.0f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in changes)})"
        )
        print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
