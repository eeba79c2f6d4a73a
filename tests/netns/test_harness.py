"""The namespace harness itself: namespaces reach each other on the test subnet and nothing
else, a thread can enter one, and everything is gone after the network closes, also when the
test fails inside it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns.harness import Network, skip_reason
from tests.netns.test_redirect import PROBES, _start, ask

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def _namespaces() -> set[str]:
    return {line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines() if line}


def test_namespaces_reach_each_other_and_a_thread_can_enter_one() -> None:
    host_interfaces = {name for _, name in socket.if_nameindex()}
    with Network() as net:
        a, b = net.add("a", resolv_conf="nameserver 192.0.2.53\n"), net.add("b")
        _start(b, "server", "8080")
        assert ask(a, 1000, "tcp", b.address, 8080) == f"8080 {b.address}:8080"
        assert a.run(["cat", "/etc/resolv.conf"]).stdout == "nameserver 192.0.2.53\n"
        # Nothing of the test network in the host's namespace.
        assert {name for _, name in socket.if_nameindex()} == host_interfaces
        with a.entered():
            assert {name for _, name in socket.if_nameindex()} == {"lo", "eth0"}
            connection = socket.create_connection((b.address, 8080), timeout=5)
        with connection:
            assert connection.recv(100).decode().strip() == f"8080 {b.address}:8080"
        assert {name for _, name in socket.if_nameindex()} == host_interfaces


def test_everything_is_removed_when_the_network_closes_even_on_failure() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), Network() as net:
        a = net.add("a", resolv_conf="nameserver 192.0.2.53\n")
        server = a.popen([sys.executable, PROBES, "server", "8080"], stdout=subprocess.PIPE)
        made = {ns.name for ns in net.namespaces} | {net.hub}
        assert made <= _namespaces()
        raise RuntimeError("the test failed")
    assert server.poll() is not None
    assert made.isdisjoint(_namespaces())
    assert not any((Path("/etc/netns") / name).exists() for name in made)
