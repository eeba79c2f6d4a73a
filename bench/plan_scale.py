"""`reconciler plan` on a pull request that changes K proxies (K = 200, 1,000, 10,000).

Builds a real git repository with `--proxies` dataplanes (10 outbounds each, `--services`
services; `--mtls` gives every proxy its own certificate), then a head branch with a
mesh-wide MeshTimeout that changes the config of every proxy, and runs `reconciler plan` as a
user does (a subprocess, JSON output). Reports wall time, peak RSS, proxies affected, Envoy
runs and distinct configs (from the summary line plan prints on stderr), and the time with
`--no-envoy-check` (the non-Envoy part: reading, rendering, diffing).

Goals on the 2-core machine: 1,000 affected proxies < 15 s, 10,000 < 120 s.

Usage: .venv/bin/python bench/plan_scale.py [--proxies 200 1000 10000] [--repeat 1] [--mtls]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import mesh_timeout  # noqa: E402

ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
OUTBOUNDS = 10
TIMEOUT_POLICY = mesh_timeout("a-timeout", "connectionTimeout: 3s\nidleTimeout: 30s")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def dataplane(i: int, services: int) -> str:
    """Proxy i is replica i // services of service i % services (named after both, as
    deployments name their pods); each calls the next OUTBOUNDS services."""
    lines = [
        "type: Dataplane",
        "mesh: default",
        f"name: svc-{i % services}-{i // services}",
        "networking:",
        f"  address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "  inbound:",
        "    - port: 8080",
        "      servicePort: 9090",
        "      tags:",
        f"        kuma.io/service: svc-{i % services}",
        "        kuma.io/protocol: http",
        "  outbound:",
    ]
    targets = [f"svc-{(i + k) % services}" for k in range(1, OUTBOUNDS + 1)]
    for n, target in enumerate(targets):
        lines += [f"    - port: {20000 + n}", "      tags:", f"        kuma.io/service: {target}"]
    return "\n".join(lines) + "\n"


def build_repo(root: Path, proxies: int, services: int, mtls: bool) -> Path:
    """A repository whose `main` has the proxies and whose `head` adds a mesh-wide timeout."""
    work = root / "config"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    mesh = "type: Mesh\nname: default\n"
    if mtls:
        mesh += "mtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n"
    (work / "mesh.yaml").write_text(mesh)
    (work / "dataplanes").mkdir()
    for i in range(proxies):
        (work / "dataplanes" / f"{i}.yaml").write_text(dataplane(i, services))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "base")
    git(work, "checkout", "-q", "-b", "head")
    (work / "timeout.yaml").write_text(TIMEOUT_POLICY)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "mesh-wide timeout")
    git(work, "checkout", "-q", "main")
    return work


def run_plan(work: Path, *extra: str) -> tuple[float, float, float, dict[str, object], str]:
    """(wall seconds, CPU seconds with Envoy's, peak RSS MiB, the JSON plan, the Envoy check's
    summary line on stderr) of one `reconciler plan` subprocess. On a shared machine the CPU
    seconds compare better than the wall time."""
    args = ["/usr/bin/time", "-v", sys.executable, "-m", "reconciler", "plan", "--repo", str(work), "--base", "main", "--head", "head"]
    start = time.perf_counter()
    done = subprocess.run([*args, "--format", "json", *extra], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    summary = re.search(r"^envoy: \d+ prox.*$", done.stderr, re.MULTILINE)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr))
    return wall, cpu, (int(rss.group(1)) / 1024 if rss else 0.0), json.loads(done.stdout), summary.group(0) if summary else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--services", type=int, default=0, help="distinct services (default: proxies / 10, at least 11)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is reported")
    parser.add_argument("--mtls", action="store_true", help="mesh with mTLS: every proxy has its own certificate")
    parser.add_argument("--skip-no-envoy", action="store_true", help="do not also time --no-envoy-check")
    args = parser.parse_args()
    print("proxies | affected | Envoy runs | distinct configs | plan s | CPU s | RSS MiB | --no-envoy-check s | valid")
    print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
    for n in args.proxies:
        services = args.services or max(OUTBOUNDS + 1, n // 10)
        with tempfile.TemporaryDirectory(prefix="plan-scale-") as tmp:
            work = build_repo(Path(tmp), n, services, args.mtls)
            walls, cpus, rsss, doc, summary = [], [], [], {}, ""
            for _ in range(args.repeat):
                wall, cpu, rss, doc, summary = run_plan(work)
                walls.append(wall)
                cpus.append(cpu)
                rsss.append(rss)
            bare = [] if args.skip_no_envoy else [run_plan(work, "--no-envoy-check")[0] for _ in range(args.repeat)]
            runs = re.search(r"in (\d+) envoy run", summary)
            configs = re.search(r"(\d+) distinct config", summary)
            proxies = doc.get("proxies") or []
            assert isinstance(proxies, list)
            print(
                f"{n} | {len(proxies)} | {runs.group(1) if runs else '?'} | {configs.group(1) if configs else '?'} | "
                f"{statistics.median(walls):.1f} | {statistics.median(cpus):.1f} | {statistics.median(rsss):.0f} | "
                f"{statistics.median(bare) if bare else float('nan'):.1f} | {doc.get('valid')}",
                flush=True,
            )


if __name__ == "__main__":
    main()
