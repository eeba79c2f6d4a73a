"""`reconciler run-dataplane --transparent-proxy` in a network namespace made by the test, with
the real Envoy and real iptables: while it runs, the namespace's traffic is redirected, Envoy
and the DNS proxy run as the proxy uid, and an application's DNS query goes through the DNS
proxy to the real nameserver (in a peer namespace) and back; when it stops, the rules are gone.
No control plane runs: Envoy starts and keeps retrying xDS, which is all this needs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns.harness import Namespace, Network, skip_reason
from tests.netns.test_redirect import APP_UID, PROBES, PROXY_UID, RECONCILER, _start, ask

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

WAIT = 20.0


def _dataplane(tmp_path: Path, address: str) -> Path:
    path = tmp_path / "dataplane.yaml"
    path.write_text(
        f"""type: Dataplane
mesh: default
name: app
networking:
  address: {address}
  inbound:
    - port: 8080
      tags:
        kuma.io/service: app
  transparentProxying:
    redirectPortInbound: 15006
    redirectPortOutbound: 15001
"""
    )
    path.chmod(0o644)
    return path


def _uids_of(ns: Namespace, comm: str) -> set[int]:
    pids = ns.run(["ip", "netns", "pids", ns.name], check=False).stdout.split()
    uids: set[int] = set()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if comm in cmdline:
            uids.add(int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]))
    return uids


def _wait(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_dataplane_installs_the_redirect_runs_as_the_proxy_uid_and_removes_it(tmp_path: Path) -> None:
    with Network() as net:
        peer = net.add("peer", ipv6=True)
        app = net.add("app", ipv6=True, resolv_conf=f"nameserver {peer.address}\nnameserver {peer.address6}\n")
        _start(peer, "dns", "53", "192.0.2.99")
        _start(peer, "server", "8080")
        sidecar = app.popen(
            [
                *RECONCILER,
                "run-dataplane",
                "--dataplane-file",
                str(_dataplane(tmp_path, app.address)),
                "--xds-tls",
                "none",
                "--cp-address",
                "127.0.0.1:1",
                "--admin-port",
                "9901",
                "--transparent-proxy",
                "--kuma-dp-user",
                str(PROXY_UID),
                "--redirect-dns",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # run-dataplane stays root (it removes the rules at the end); its forked DNS proxy does not.
            _wait(lambda: _uids_of(app, "--config-path") and len(_uids_of(app, "run-dataplane")) == 2, "Envoy and the DNS proxy")
            assert _uids_of(app, "--config-path") == {PROXY_UID}
            assert _uids_of(app, "run-dataplane") == {0, PROXY_UID}
            saved = app.run(["iptables-save", "-t", "nat"]).stdout
            assert "-j KUMA_MESH_OUTBOUND" in saved
            assert any(
                f"-d {peer.address}/32 -p udp" in line and line.endswith("--dport 53 -j REDIRECT --to-ports 15053")
                for line in saved.splitlines()
            )
            # The application's query is redirected to the DNS proxy, which forwards it (as the
            # proxy uid, so not redirected again) to the peer's nameserver.
            assert app.run([sys.executable, PROBES, "resolve", str(APP_UID), "anything.example"]).stdout.strip() == "192.0.2.99"
            # Over IPv6 too: ip6tables sends the query to the proxy on [::1], which forwards it
            # to the first nameserver.
            assert (
                app.run([sys.executable, PROBES, "resolve", str(APP_UID), "v6.example", str(peer.address6)]).stdout.strip() == "192.0.2.99"
            )
            # And its TCP goes to Envoy's outbound port (Envoy, with no config yet, has no listener there).
            assert not ask(app, APP_UID, "tcp", peer.address, 8080).startswith("8080")
        finally:
            sidecar.send_signal(signal.SIGTERM)
            try:
                _, stderr = sidecar.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                sidecar.kill()
                _, stderr = sidecar.communicate()
        assert "KUMA_MESH" not in app.run(["iptables-save"]).stdout, stderr
        assert ask(app, APP_UID, "tcp", peer.address, 8080) == f"8080 {peer.address}:8080"
        assert sidecar.returncode == 0, stderr
        assert not _uids_of(app, "run-dataplane")
