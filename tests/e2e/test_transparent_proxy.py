"""A transparent proxy's config in a real Envoy: ACKed, with Kuma's passthrough listeners on the
redirect ports, its own listeners left unbound, and the DNS records on the dynamic-config socket.

One control plane and one sidecar (`web-1`, transparentProxying on two free redirect ports and
a declared outbound to `backend`) are shared by the module. No iptables here: nothing is
redirected, so no traffic goes through the passthrough listeners (a connection made straight
to one would be sent to itself); the lead's network-namespace test sends traffic through them.
The last test runs Envoy on a static bootstrap of a proxy whose virtual outbounds and DNS
records are set by hand (reconciler/mesh/vips.py fills them in the control plane).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.dataplane.dynconf import fetch_dynamic_config
from reconciler.dataplane.envoy_binary import find_envoy
from reconciler.frozen import FrozenDict
from reconciler.mesh.model import DnsRecord, Outbound, build_mesh_model
from reconciler.views.proxy import proxy_view
from reconciler.xds.static import static_bootstrap, to_yaml
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, free_port, http_get, serving, wait_until
from tests.support import dataplane_yaml, generate_checked, snapshot_of_text

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\n"
NO_PASSTHROUGH = MESH + "networking:\n  outbound:\n    passthrough: false\n"


def web(outbound_port: int, inbound_port: int, declared: int, inbound: int) -> str:
    text = dataplane_yaml("web-1", "web", inbound, free_port(), {"backend": declared})
    tp = f"  transparentProxying:\n    redirectPortInbound: {inbound_port}\n    redirectPortOutbound: {outbound_port}\n"
    return text.replace("networking:\n  address: 127.0.0.1\n", "networking:\n  address: 127.0.0.1\n" + tp)


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    envoy: EnvoyProcess
    work_dir: Path
    ports: dict[str, int]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("tproxy")
    ports = {name: free_port() for name in ("outbound", "inbound", "declared", "web_in", "backend_in")}
    remote = ConfigRemote(root)
    head = remote.push(
        {
            "mesh.yaml": MESH,
            "backend.yaml": dataplane_yaml("backend-1", "backend", ports["backend_in"], free_port()),
            "web.yaml": web(ports["outbound"], ports["inbound"], ports["declared"], ports["web_in"]),
        },
        "a transparent proxy",
    )
    cp = ControlPlaneProcess(remote.bare, root / "state")
    with serving(cp, root / "envoys", ["web-1"], head) as envoys:
        yield Mesh(remote, cp, envoys["web-1"], root / "envoys" / "web-1", ports)


def listeners(admin: str) -> dict[str, dict[str, Any]]:
    """Envoy's listeners by name, with the addresses it listens on (admin `/listeners`)."""
    return {item["name"]: item for item in json.loads(http_get(admin + "/listeners?format=json")[1])["listener_statuses"]}


def address(item: dict[str, Any]) -> tuple[str, int]:
    sock = item["local_address"]["socket_address"]
    return sock["address"], sock["port_value"]


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_envoy_acks_the_passthrough_listeners_and_leaves_the_ports_of_its_own_listeners_to_them(mesh: Mesh) -> None:
    seen = listeners(mesh.envoy.admin)
    out, into = mesh.ports["outbound"], mesh.ports["inbound"]
    assert address(seen["outbound:passthrough:ipv4"]) == ("0.0.0.0", out)
    assert address(seen["outbound:passthrough:ipv6"]) == ("::", out)
    assert address(seen["inbound:passthrough:ipv4"]) == ("0.0.0.0", into)
    assert address(seen["inbound:passthrough:ipv6"]) == ("::", into)
    # The declared outbound and the inbound are in Envoy, but only the passthrough listeners
    # listen: nothing accepts a connection on their own ports.
    declared, inbound = f"outbound:127.0.0.1:{mesh.ports['declared']}", f"inbound:127.0.0.1:{mesh.ports['web_in']}"
    assert declared in seen and inbound in seen
    assert refuses(mesh.ports["declared"]) and refuses(mesh.ports["web_in"])


def test_the_sidecar_fetches_its_dns_records_with_an_etag(mesh: Mesh) -> None:
    document, etag = fetch_dynamic_config(mesh.work_dir, "/dns")
    assert document is not None and etag is not None
    assert (document["ttl"], document["extraLabels"]) == (30, {"mesh": "default"})
    # Only names whose VIP is one of the proxy's outbounds (none until the mesh has VIPs).
    vips = {name.split(":")[1] for name in listeners(mesh.envoy.admin) if name.startswith("outbound:") and ":passthrough:" not in name}
    assert all(record["ips"][0] in vips for record in document["records"])
    assert fetch_dynamic_config(mesh.work_dir, "/dns", etag=etag) == (None, etag)


def test_passthrough_off_is_acked_and_only_the_outbound_passthrough_cluster_goes(mesh: Mesh) -> None:
    def clusters() -> set[str]:
        return {line.split("::")[0] for line in http_get(mesh.envoy.admin + "/clusters")[1].splitlines()}

    assert "outbound:passthrough:ipv4" in clusters()
    try:
        head = mesh.remote.push({"mesh.yaml": NO_PASSTHROUGH}, "passthrough off")
        mesh.cp.wait_applied(head, ["default.web-1"])
        wait_until(lambda: "outbound:passthrough:ipv4" not in clusters(), 10, what="the outbound passthrough cluster removed")
        assert {"inbound:passthrough:ipv4", "self_transparentproxy_no_destination_inbound"} <= clusters()
        assert "outbound:passthrough:ipv4" in listeners(mesh.envoy.admin)
    finally:
        head = mesh.remote.push({"mesh.yaml": MESH}, "passthrough on")
        mesh.cp.wait_applied(head, ["default.web-1"])


def test_envoy_serves_the_dns_records_of_the_proxys_vips_and_listens_for_them_without_binding(tmp_path: Path) -> None:
    out, into, admin = free_port(), free_port(), free_port()
    text = web(out, into, free_port(), free_port())
    model = build_mesh_model(snapshot_of_text(f"{MESH}---\n{text}").resources)
    model = replace(
        model,
        virtual_outbounds={"default": (Outbound("240.0.0.1", 80, "backend", FrozenDict({"kuma.io/service": "backend"})),)},
        dns={"default": (DnsRecord("backend.mesh", ("240.0.0.1",)), DnsRecord("elsewhere.mesh", ("240.0.0.7",)))},
    )
    view = proxy_view(model, "default.web-1")
    assert view is not None
    config = tmp_path / "envoy.yaml"
    config.write_text(to_yaml(static_bootstrap(generate_checked(view), node_id=view.node_id, admin_port=admin)))
    log = (tmp_path / "envoy.log").open("wb")
    # Envoy runs in the work directory: the dynamic-config socket's path is relative to it.
    envoy = subprocess.Popen(
        [find_envoy(), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warn"], cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        wait_until(
            lambda: envoy.poll() is not None or "outbound:240.0.0.1:80" in listeners(f"http://127.0.0.1:{admin}"), 20, what="envoy up"
        )
        assert envoy.poll() is None, (tmp_path / "envoy.log").read_text()[-3000:]
        document, _ = fetch_dynamic_config(tmp_path, "/dns")
        assert document == {
            "records": [{"name": "backend.mesh", "ips": ["240.0.0.1", "::ffff:f000:1"]}],
            "ttl": 30,
            "extraLabels": {"mesh": "default"},
        }
    finally:
        envoy.terminate()
        try:
            envoy.wait(10)
        except subprocess.TimeoutExpired:
            envoy.kill()
            envoy.wait(5)
        log.close()
