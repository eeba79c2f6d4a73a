"""Failover of a 3-replica control plane: how long proxies take to reach another replica after
one dies, and what their reconnects cost them.

Three `reconciler serve` replicas follow one bare repository (`file://`) with one keys directory,
behind an Envoy TCP load balancer that checks `/readyz` (tests/e2e/ha.py, the machinery of the
proof test). `--sidecars` real Envoys (mTLS on, builtin CA) connect through the balancer while a
client sends requests through one of them. Then, `--rounds` times: kill -9 the replica serving
the most proxies and time until every proxy it served is connected and synced on another
replica, counting the xDS responses the moved proxies took in (what a reconnect pushed) and the
failed requests; restart the replica. Last, a rolling restart (SIGTERM, start, ready, next).

Usage: .venv/bin/python bench/ha_failover.py [--sidecars 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.ha import Replicas, Traffic, make_keys, responses_received
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_until
from tests.support import dataplane_yaml

MESH = "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n"
ALLOW_ALL = (
    "type: MeshTrafficPermission\nname: allow-all\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n"
    "  from:\n    - targetRef: {kind: Mesh}\n      default: {action: Allow}\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sidecars", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ha-failover-"))
    remote = ConfigRemote(root)
    names = [f"client-{i}" for i in range(args.sidecars - 1)] + ["backend-1"]
    out_port = free_port()
    with Workload("backend") as backend:
        files: dict[str, str | None] = {"meshes/default.yaml": MESH, "policies/allow.yaml": ALLOW_ALL}
        for name in names:
            service = "backend" if name == "backend-1" else "client"
            app = backend.port if service == "backend" else free_port()
            outbounds = {} if service == "backend" else {"backend": out_port if name == "client-0" else free_port()}
            files[f"dataplanes/{name}.yaml"] = dataplane_yaml(name, service, free_port(), app, outbounds)
        sha = remote.push(files, "bench mesh")
        repo = f"file://{remote.bare}"
        make_keys(root / "keys", repo)
        replicas = Replicas(repo, root, root / "keys")
        envoys: dict[str, EnvoyProcess] = {}
        traffic = Traffic(f"http://127.0.0.1:{out_port}/", "200 backend")
        try:
            replicas.start()
            for name in names:
                envoys[name] = EnvoyProcess(cast(ControlPlaneProcess, replicas.frontend), root / "envoys", name=name)
                envoys[name].start()
            for r in replicas.members:
                r.wait_applied(sha, timeout=60)
            nodes = [f"default.{n}" for n in names]
            for node in nodes:
                wait_until(lambda node=node: replicas.serving(node), 60, what=f"{node} synced")
            traffic.start()
            reconnects: list[float] = []
            pushed = moved_total = 0
            for round_ in range(args.rounds):
                on = {node: replicas.serving(node) for node in nodes}
                victim = max(replicas.members, key=lambda r: sum(1 for v in on.values() if v is r))
                moved = [n for n, v in on.items() if v is victim]
                before = {n: responses_received(envoys[n.partition(".")[2]]) for n in moved}
                with traffic.window() as counts:
                    killed = time.monotonic()
                    replicas.kill(victim)
                    for node in moved:
                        wait_until(lambda node=node: replicas.serving(node), 60, what=f"{node} moved")
                    reconnects.append(time.monotonic() - killed)
                    time.sleep(1.0)
                after = {n: responses_received(envoys[n.partition(".")[2]]) for n in moved}
                pushed += sum(after[n] - before[n] for n in moved)
                moved_total += len(moved)
                print(
                    f"round {round_ + 1}: killed a replica serving {len(moved)} proxies; all reconnected and synced in "
                    f"{reconnects[-1]:.2f} s; requests: {counts['sent']} sent, {len(counts['failures'])} failed"
                )
                replicas.restart(victim)
            before_all = {n: responses_received(e) for n, e in envoys.items()}
            with traffic.window() as counts:
                started = time.monotonic()
                for r in replicas.members:
                    r.stop()
                    replicas.restart(r)
                    for node in nodes:
                        wait_until(lambda node=node: replicas.serving(node), 60, what=f"{node} served")
                rolling = time.monotonic() - started
                time.sleep(1.0)
            rolling_pushes = sum(responses_received(e) - before_all[n] for n, e in envoys.items())
            print(
                f"\nkill -9: {args.rounds} rounds, {moved_total} proxy moves; reconnect and sync: median "
                f"{statistics.median(reconnects):.2f} s, max {max(reconnects):.2f} s; xDS responses pushed by reconnects: {pushed}"
            )
            print(
                f"rolling restart of 3 replicas: {rolling:.1f} s; responses pushed: {rolling_pushes}; "
                f"requests {counts['sent']} sent, {len(counts['failures'])} failed; failed in all: {len(traffic.failures)}"
            )
        finally:
            traffic.stop()
            for e in envoys.values():
                e.stop()
            replicas.stop()


if __name__ == "__main__":
    main()
