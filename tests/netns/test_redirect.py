"""`reconciler transparent-proxy install` with REAL iptables, in network namespaces this test
makes: a workload namespace `app` with the redirect installed, and a `peer` namespace on the
same test subnet. In `app`, a probe server listens on the redirect ports (15001, 15006, 15053)
and answers each connection with its own port and the connection's original destination, so
a client's answer says whether the kernel redirected it and where it was going.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.harness import Namespace, Network, skip_reason

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

PROBES = str(Path(__file__).with_name("probes.py"))
RECONCILER = [sys.executable, "-m", "reconciler"]
APP_UID, OTHER_UID, PROXY_UID = 1000, 1001, 5678
READY_TIMEOUT = 10.0


def _start(ns: Namespace, *args: str) -> subprocess.Popen[Any]:
    process = ns.popen([sys.executable, PROBES, *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
    assert ready and process.stdout.readline().strip() == "ready", f"probe {args} did not start"
    return process


def ask(ns: Namespace, uid: int, proto: str, host: str, port: int) -> str:
    return ns.run([sys.executable, PROBES, "client", str(uid), proto, host, str(port)], timeout=15).stdout.strip()


class Setup:
    def __init__(self, net: Network) -> None:
        self.peer = net.add("peer", extra_addresses=1)
        self.app = net.add("app", resolv_conf=f"nameserver {self.peer.address}\n")
        # Direct answers: the peer's own servers, and an app server on an excluded inbound port.
        _start(self.peer, "server", "8080", "8081", "8082")
        _start(self.peer, "udp", "53", "upstream")
        _start(self.app, "server", "15001", "15006", "2222")
        _start(self.app, "udp", "15053", "dns-proxy")


def install(ns: Namespace, *flags: str) -> subprocess.CompletedProcess[str]:
    return ns.run([*RECONCILER, "transparent-proxy", "install", "--ip-family-mode", "ipv4", "--kuma-dp-user", str(PROXY_UID), *flags])


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with Network() as net:
        s = Setup(net)
        install(
            s.app,
            "--redirect-dns",
            "--exclude-outbound-ports",
            "8081",
            "--exclude-outbound-ips",
            f"{s.peer.addresses[1]}/32",
            "--exclude-outbound-ports-for-uids",
            f"tcp:8082:{OTHER_UID}",
            "--exclude-inbound-ports",
            "2222",
        )
        yield s


def test_app_outbound_is_redirected_with_its_original_destination(setup: Setup) -> None:
    assert ask(setup.app, APP_UID, "tcp", setup.peer.address, 8080) == f"15001 {setup.peer.address}:8080"


def test_the_proxy_uid_goes_out_directly(setup: Setup) -> None:
    assert ask(setup.app, PROXY_UID, "tcp", setup.peer.address, 8080) == f"8080 {setup.peer.address}:8080"


def test_excluded_ports_addresses_and_uids_go_out_directly(setup: Setup) -> None:
    peer = setup.peer
    assert ask(setup.app, APP_UID, "tcp", peer.address, 8081) == f"8081 {peer.address}:8081"
    assert ask(setup.app, APP_UID, "tcp", peer.addresses[1], 8080) == f"8080 {peer.addresses[1]}:8080"
    assert ask(setup.app, OTHER_UID, "tcp", peer.address, 8082) == f"8082 {peer.address}:8082"
    # The same port for another uid is still redirected: the exclusion is per uid.
    assert ask(setup.app, APP_UID, "tcp", peer.address, 8082) == f"15001 {peer.address}:8082"


def test_applications_loopback_traffic_stays_local(setup: Setup) -> None:
    assert ask(setup.app, APP_UID, "tcp", "127.0.0.1", 2222) == "2222 127.0.0.1:2222"


def test_inbound_to_the_namespace_address_goes_to_15006(setup: Setup) -> None:
    app = setup.app
    assert ask(setup.peer, 0, "tcp", app.address, 9000) == f"15006 {app.address}:9000"
    assert ask(setup.peer, 0, "tcp", app.address, 2222) == f"2222 {app.address}:2222"


def test_udp_dns_to_the_nameserver_goes_to_the_dns_port(setup: Setup) -> None:
    assert ask(setup.app, APP_UID, "udp", setup.peer.address, 53) == "dns-proxy"
    # The proxy's own queries reach the real nameserver (the DNS proxy forwards through them).
    assert ask(setup.app, PROXY_UID, "udp", setup.peer.address, 53) == "upstream"


def test_uninstall_restores_direct_traffic_and_keeps_other_rules() -> None:
    with Network() as net:
        s = Setup(net)
        # A rule of some other software, which neither install nor uninstall may touch.
        s.app.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "9999", "-j", "RETURN"])
        install(s.app)
        install(s.app)  # again: replaces, never duplicates
        saved = s.app.run(["iptables-save", "-t", "nat"]).stdout
        assert saved.count("-j KUMA_MESH_OUTBOUND\n") == 1
        assert ask(s.app, APP_UID, "tcp", s.peer.address, 8080) == f"15001 {s.peer.address}:8080"

        done = s.app.run([*RECONCILER, "transparent-proxy", "uninstall"])
        assert "uninstalled (IPv4)" in done.stderr
        deadline = time.monotonic() + 5
        while "15001" in ask(s.app, APP_UID, "tcp", s.peer.address, 8080) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ask(s.app, APP_UID, "tcp", s.peer.address, 8080) == f"8080 {s.peer.address}:8080"
        saved = s.app.run(["iptables-save"]).stdout
        assert "KUMA_MESH" not in saved and "kuma/mesh" not in saved
        assert "--dport 9999 -j RETURN" in saved


def test_dualstack_redirects_ipv6_with_ip6tables_and_uninstall_removes_both() -> None:
    with Network() as net:
        peer = net.add("peer", ipv6=True)
        app = net.add("app", ipv6=True)
        _start(peer, "server", "8080")
        _start(app, "server", "15001", "15006")
        assert peer.address6 is not None and app.address6 is not None
        install(app, "--ip-family-mode", "dualstack")
        assert ask(app, APP_UID, "tcp", peer.address6, 8080) == f"15001 [{peer.address6}]:8080"
        assert ask(app, PROXY_UID, "tcp", peer.address6, 8080) == f"8080 [{peer.address6}]:8080"
        assert ask(peer, 0, "tcp", app.address6, 9000) == f"15006 [{app.address6}]:9000"
        assert ask(app, APP_UID, "tcp", peer.address, 8080) == f"15001 {peer.address}:8080"

        app.run([*RECONCILER, "transparent-proxy", "uninstall"])
        assert ask(app, APP_UID, "tcp", peer.address6, 8080) == f"8080 [{peer.address6}]:8080"
        assert "KUMA_MESH" not in app.run(["ip6tables-save"]).stdout + app.run(["iptables-save"]).stdout
