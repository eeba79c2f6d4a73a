"""A service added to a proxy with many outbounds: when its listener appears in Envoy, the
cluster it routes to is already warm, with its endpoint (make before break).

After a CDS update that adds a cluster, the server holds the LDS update until Envoy has asked
for the new cluster's endpoints and been answered (reconciler/xds/sotw.py). Before, the LDS
update (every listener, state of the world) went out at once, ahead of those endpoints: Envoy
applied it first, and at 10,000 listeners that took it past the new cluster's 15 s initial
fetch timeout (docs/performance.md, "After issue 16's changes"; bench/vs_sovereign.py measures
it). At the size a test affords, Envoy applies the listeners in milliseconds, so the old order
showed here only as a listener briefly routing to a cluster still warming: this checks, at the
first admin snapshot that has the new listener, that its cluster is active with its endpoint
(with the old order it failed in one run of two; the 15 s delay itself needs 10,000 listeners).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, http_get, wait_until

pytestmark = pytest.mark.envoy

SERVICES = 150
SERVICE_PORT_BASE = 31000  # nothing listens there: no traffic is sent
OUTBOUND_PORT_BASE = 21000


def outbound(i: int) -> tuple[str, int]:
    return f"127.41.{i // 250}.{i % 250 + 1}", OUTBOUND_PORT_BASE + i


def service(i: int) -> str:
    return (
        f"type: Dataplane\nmesh: default\nname: svc-{i}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
        f"    - port: {SERVICE_PORT_BASE + i}\n      tags:\n        kuma.io/service: svc-{i}\n        kuma.io/protocol: http\n"
    )


def client(n: int) -> str:
    outbounds = "".join(
        f"    - address: {outbound(i)[0]}\n      port: {outbound(i)[1]}\n      tags:\n        kuma.io/service: svc-{i}\n" for i in range(n)
    )
    return (
        "type: Dataplane\nmesh: default\nname: client\nlabels:\n  reconciler.io/outbound-shape: kuma\n"
        f"networking:\n  address: 127.0.0.1\n  outbound:\n{outbounds}"
    )


def snapshot(envoy: EnvoyProcess, i: int) -> dict[str, Any]:
    """One admin read (Envoy answers it between two config updates): the listener, cluster and
    endpoints of service `i`, as {"listener": bool, "cluster": bool, "ports": set}."""
    address, port = outbound(i)
    pattern = f"^(svc-{i}|outbound:{address}:{port})$".replace(".", r"\.")
    dump = json.loads(http_get(envoy.admin + "/config_dump?include_eds&name_regex=" + urllib.parse.quote(pattern))[1])
    seen: dict[str, Any] = {"listener": False, "cluster": False, "ports": set()}
    for config in dump.get("configs", []):
        kind = config.get("@type", "")
        if kind.endswith("ListenersConfigDump"):
            seen["listener"] = any("active_state" in entry for entry in config.get("dynamic_listeners", []))
        elif kind.endswith("ClustersConfigDump"):
            seen["cluster"] = bool(config.get("dynamic_active_clusters"))
        elif kind.endswith("EndpointsConfigDump"):
            for entry in config.get("dynamic_endpoint_configs", []):
                for group in entry.get("endpoint_config", {}).get("endpoints", []):
                    for lb in group.get("lb_endpoints", []):
                        seen["ports"].add(lb["endpoint"]["address"]["socket_address"]["port_value"])
    return seen


def test_a_new_outbound_listener_arrives_after_its_cluster_is_warm(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    files = {"mesh.yaml": "type: Mesh\nname: default\n", "clients/client.yaml": client(SERVICES)}
    files |= {f"services/svc-{i}.yaml": service(i) for i in range(SERVICES)}
    head = remote.push(files, f"{SERVICES} services and their client")
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state")
    envoy = EnvoyProcess(cp, tmp_path / "client", name="client")
    try:
        cp.start()
        cp.wait_applied(head, timeout=60)
        envoy.start()
        wait_until(lambda: snapshot(envoy, SERVICES - 1)["listener"], 30, what="the client's listeners")

        new = SERVICES
        remote.push({f"services/svc-{new}.yaml": service(new), "clients/client.yaml": client(SERVICES + 1)}, f"svc-{new}")
        deadline = time.monotonic() + 30
        while not (seen := snapshot(envoy, new))["listener"]:
            assert time.monotonic() < deadline, f"no listener for svc-{new} in Envoy after 30 s"
            time.sleep(0.01)
        assert seen == {"listener": True, "cluster": True, "ports": {SERVICE_PORT_BASE + new}}
        assert "initial fetch timed out" not in envoy.output()
    finally:
        envoy.stop()
        cp.stop()
