"""From `git push` to every real Envoy running the new config, and to traffic following it.

Starts the control plane on a bare repository, a client sidecar and N service sidecars
(real Envoy via `reconciler run-dataplane`) with HTTP workloads; then, R times, pushes a
commit that adds a new service (its Dataplane, plus an outbound to it in the client) and
measures:

  push → all ACK      `git push` returned → every proxy's stream has pushed the new
                      config and the proxy ACKed every response (GET /status, 10 ms polls)
  push → traffic      `git push` returned → the first 200 from the new outbound

Usage: .venv/bin/python bench/push_latency.py [--services 4] [--rounds 5] [--mode sotw|delta]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get


def dataplane(name: str, service: str, inbound: int, app: int, outbounds: dict[str, int]) -> str:
    text = (
        f"type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
        f"    - port: {inbound}\n      servicePort: {app}\n      tags:\n        kuma.io/service: {service}\n        kuma.io/protocol: http\n"
    )
    if outbounds:
        text += "  outbound:\n" + "".join(f"    - port: {p}\n      tags:\n        kuma.io/service: {s}\n" for s, p in outbounds.items())
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mode", choices=["sotw", "delta"], default="sotw")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        remote = ConfigRemote(root)
        workloads = [Workload(f"svc-{i}").__enter__() for i in range(args.services + args.rounds)]
        ports = {w.name: (free_port(), free_port()) for w in workloads}  # (inbound, client outbound)
        client_in, client_app = free_port(), free_port()
        live = [w.name for w in workloads[: args.services]]

        def files(services: list[str]) -> dict[str, str | None]:
            out: dict[str, str | None] = {"mesh.yaml": "type: Mesh\nname: default\n"}
            out["client.yaml"] = dataplane("client", "client", client_in, client_app, {s: ports[s][1] for s in services})
            for w in workloads:
                out[f"{w.name}.yaml"] = dataplane(f"{w.name}-1", w.name, ports[w.name][0], w.port, {}) if w.name in services else None
            return out

        sha = remote.push(files(live), "initial")
        cp = ControlPlaneProcess(remote.bare, root / "state")
        cp.start()
        envoys = [EnvoyProcess(cp, root / "envoys", name="client", mode=args.mode)]
        envoys += [EnvoyProcess(cp, root / "envoys", name=f"{s}-1", mode=args.mode) for s in live]
        try:
            for e in envoys:
                e.start()
            nodes = [f"default.{e.name}" for e in envoys]
            cp.wait_applied(sha, nodes, timeout=60)
            acks, traffic = [], []
            for r in range(args.rounds):
                new = workloads[args.services + r]
                newcomer = EnvoyProcess(cp, root / "envoys", name=f"{new.name}-1", mode=args.mode)
                newcomer.start(wait=False)
                envoys.append(newcomer)
                nodes.append(f"default.{new.name}-1")
                live.append(new.name)
                t0 = time.perf_counter()
                sha = remote.push(files(live), f"add {new.name}")
                t_push = time.perf_counter()
                first_200 = None
                while True:
                    if first_200 is None:
                        try:
                            if http_get(f"http://127.0.0.1:{ports[new.name][1]}/", timeout=1)[0] == 200:
                                first_200 = time.perf_counter()
                        except OSError:
                            pass
                    status = cp.status() or {}
                    synced = status.get("lastAppliedRevision", "").endswith(sha) and all(
                        status["proxies"].get(n, {}).get("synced") for n in nodes
                    )
                    if synced and first_200 is not None:
                        acks.append(time.perf_counter() - t_push)
                        traffic.append(first_200 - t_push)
                        break
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"round {r}: not synced within 30 s: {status}")
                    time.sleep(0.01)
                print(
                    f"round {r + 1}: {len(nodes)} proxies, push → all ACK {acks[-1] * 1000:.0f} ms, push → traffic {traffic[-1] * 1000:.0f} ms",
                    flush=True,
                )
            print(
                f"median over {args.rounds} rounds ({args.mode}): push → all ACK {statistics.median(acks) * 1000:.0f} ms, "
                f"push → traffic {statistics.median(traffic) * 1000:.0f} ms"
            )
        finally:
            for e in envoys:
                e.stop()
            cp.stop()
            for w in workloads:
                w.__exit__(None, None, None)


if __name__ == "__main__":
    main()
