"""Network namespaces for tests: each workload in a namespace of its own, all joined on a
private test subnet, removed on every exit path.

    from tests.netns.harness import Network, skip_reason

    pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

    with Network() as net:                      # a hub namespace with a bridge
        a = net.add("app", resolv_conf="nameserver 10.0.0.1\\n")
        b = net.add("peer", extra_addresses=1)   # b.addresses: [b.address, one more]
        server = b.popen([sys.executable, "-c", "..."])   # runs inside b; stopped at close
        out = a.run(["iptables-save"]).stdout             # completed, checked, captured
        a.address                                 # "10.x.y.2": reachable from every namespace

API
- `skip_reason()`: None when this can run (root, `ip netns`, iptables); else why not, for a skip.
- `Network(subnet=None)`: a context manager (also closed by a finalizer and at interpreter exit).
  `subnet` defaults to a /24 in 10.0.0.0/8 chosen per network; nothing is added to the host's
  own namespace: the bridge lives in a hub namespace and every link is a veth pair between it
  and a workload namespace, so traffic stays inside the namespaces the test made.
- `Network.add(hint, *, extra_addresses=0, resolv_conf=None, ipv6=False) -> Namespace`: a
  namespace named `<hint>-<unique>` (at most 15 characters), loopback up, `eth0` with the next
  address(es) of the subnet, a default route via eth0; with `ipv6`, also an address of the
  network's ULA /64 (`Namespace.address6`, usable at once: no duplicate address detection). `resolv_conf` is written to /etc/netns/<name>/resolv.conf,
  which `ip netns exec` mounts over /etc/resolv.conf for processes it starts.
- `Namespace.run(argv, check=True, timeout=30, **kwargs) -> CompletedProcess[str]` and
  `Namespace.popen(argv, **kwargs) -> Popen` run `argv` inside the namespace (through
  `ip netns exec`); `user=`/`group=` (subprocess's own) run it as another uid. Processes from
  `popen` are terminated (then killed) when the network closes, before the namespaces go.
- `with Namespace.entered():` this thread runs inside the namespace (setns(2)) until the block
  ends: sockets made there belong to it and keep working after the block, so the test process
  can use its usual clients (`http_get`, gRPC) on the namespaces' addresses. Files, /etc/resolv.conf
  included, stay the host's: only the network changes, and only for this thread.
- `Namespace.name`, `.address`, `.addresses`, `.prefix` (the subnet's prefix length), `.address6`
  (None without `ipv6`).
- `Network.close()`: stops the processes, deletes the namespaces and /etc/netns/<name>.
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import shutil
import subprocess
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Network", "Namespace", "skip_reason"]

_NETNS_ETC = Path("/etc/netns")
_NETNS_RUN = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_STOP_TIMEOUT = 5.0


def skip_reason() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root: network namespaces and iptables"
    for tool in ("ip", "iptables", "iptables-restore", "iptables-save"):
        if shutil.which(tool) is None and not any(os.access(f"{d}/{tool}", os.X_OK) for d in ("/usr/sbin", "/sbin")):
            return f"{tool} is not installed (Debian: apt-get install iproute2 iptables)"
    name = f"probe-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        probe = subprocess.run(["ip", "netns", "exec", name, "iptables-save"], capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            return f"iptables does not work in a network namespace: {probe.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class Namespace:
    """One workload's namespace on the test subnet."""

    def __init__(self, network: Network, name: str, addresses: list[str], prefix: int) -> None:
        self._network = network
        self.name = name
        self.addresses = addresses
        self.address = addresses[0]
        self.prefix = prefix
        self.address6: str | None = None

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.argv(argv), check=check, timeout=timeout, text=True, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(self.argv(argv), **kwargs)
        self._network._processes.append(process)
        return process

    @contextmanager
    def entered(self) -> Iterator[Namespace]:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(_NETNS_RUN / self.name, os.O_RDONLY)
            try:
                if libc.setns(target, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {self.name}")
            finally:
                os.close(target)
            try:
                yield self
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to this thread's namespace")
        finally:
            os.close(own)

    def __repr__(self) -> str:
        return f"Namespace({self.name}, {self.address})"


def _cleanup(names: list[str], processes: list[subprocess.Popen[Any]]) -> None:
    # Processes first: a namespace is only freed when nothing runs in it.
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(_STOP_TIMEOUT)
    processes.clear()
    for name in reversed(names):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        shutil.rmtree(_NETNS_ETC / name, ignore_errors=True)
    names.clear()


class Network:
    """A hub namespace with a bridge, and the workload namespaces joined to it."""

    def __init__(self, subnet: str | None = None) -> None:
        tag = uuid.uuid4().hex
        self._tag = tag[:5]
        self.subnet = ipaddress.ip_network(subnet or f"10.{200 + int(tag[5:7], 16) % 50}.{int(tag[7:9], 16)}.0/24")
        self._hosts = self.subnet.hosts()
        self.subnet6 = ipaddress.ip_network(f"fd{tag[9:11]}:{tag[11:15]}:{tag[15:19]}::/64")
        self._hosts6 = self.subnet6.hosts()
        self._names: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self.namespaces: list[Namespace] = []
        self._finalizer = weakref.finalize(self, _cleanup, self._names, self._processes)
        atexit.register(self._finalizer)
        self.hub = self._new_name("hub")
        try:
            _ip("netns", "add", self.hub)
            self._exec(self.hub, "ip", "link", "set", "lo", "up")
            self._exec(self.hub, "ip", "link", "add", "br0", "type", "bridge")
            self._exec(self.hub, "ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _new_name(self, hint: str) -> str:
        name = f"{hint[:6]}-{self._tag}{len(self._names)}"
        self._names.append(name)
        return name

    @staticmethod
    def _exec(ns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True, timeout=30)

    def add(self, hint: str, *, extra_addresses: int = 0, resolv_conf: str | None = None, ipv6: bool = False) -> Namespace:
        name = self._new_name(hint)
        index = len(self.namespaces)
        outside, inside = f"v{self._tag}{index}h", f"v{self._tag}{index}n"
        _ip("netns", "add", name)
        # The pair is made in the hub so nothing ever appears in the host's namespace.
        self._exec(self.hub, "ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        self._exec(self.hub, "ip", "link", "set", inside, "netns", name)
        self._exec(self.hub, "ip", "link", "set", outside, "master", "br0")
        self._exec(self.hub, "ip", "link", "set", outside, "up")
        addresses = [str(next(self._hosts)) for _ in range(1 + extra_addresses)]
        self._exec(name, "ip", "link", "set", "lo", "up")
        self._exec(name, "ip", "link", "set", inside, "name", "eth0")
        for address in addresses:
            self._exec(name, "ip", "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        self._exec(name, "ip", "link", "set", "eth0", "up")
        self._exec(name, "ip", "route", "add", "default", "dev", "eth0")
        if resolv_conf is not None:
            (_NETNS_ETC / name).mkdir(parents=True, exist_ok=True)
            (_NETNS_ETC / name / "resolv.conf").write_text(resolv_conf)
        namespace = Namespace(self, name, addresses, self.subnet.prefixlen)
        if ipv6:
            namespace.address6 = str(next(self._hosts6))
            self._exec(name, "ip", "-6", "addr", "add", f"{namespace.address6}/64", "dev", "eth0", "nodad")
            self._exec(name, "ip", "-6", "route", "add", "default", "dev", "eth0")
        self.namespaces.append(namespace)
        return namespace

    def close(self) -> None:
        self._finalizer()
        atexit.unregister(self._finalizer)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
