"""Several `reconciler serve` replicas behind one TCP load balancer, as a Kubernetes Service
spreads proxies over a Deployment's pods: the machinery of tests/e2e/test_ha_replicas.py and
bench/ha_failover.py.

- every replica follows one bare repository through a `file://` URL (so each keeps its own
  mirror, as pods do) and reads one keys directory (`--keys-dir`, the mounted Secret);
- the load balancer is a real Envoy: a TCP proxy in front of the replicas' xDS ports that
  checks each replica's `/readyz` on its API port, as a Service routes only to ready pods;
- sidecars (EnvoyProcess) dial the load balancer; `Frontend` is what they are told about the
  control plane: the balancer's address, and the keys every replica shares.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.dataplane.envoy_binary import find_envoy
from tests.e2e.harness import PYTHON, ControlPlaneProcess, EnvoyProcess, _Process, free_port, http_get, wait_until

__all__ = ["Replicas", "Frontend", "LoadBalancer", "Traffic", "responses_received", "make_keys"]


def make_keys(keys_dir: Path, repo: str) -> None:
    """`reconciler keys init --out DIR --repo REPO`: the keys every replica reads."""
    result = subprocess.run(
        [PYTHON, "-m", "reconciler", "keys", "init", "--out", str(keys_dir), "--repo", repo], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"reconciler keys init failed:\n{result.stdout}\n{result.stderr}")


_LB_CONFIG = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: xds
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: xds
          cluster: replicas
          max_connect_attempts: 3
  clusters:
  - name: replicas
    type: STATIC
    connect_timeout: 0.5s
    lb_policy: ROUND_ROBIN
    # As a Service's endpoints: a replica that is not ready gets no new connection.
    health_checks:
    - timeout: 0.4s
      interval: 0.3s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {{path: /readyz}}
    load_assignment:
      cluster_name: replicas
      endpoints:
      - lb_endpoints:
{endpoints}
"""

_ENDPOINT = """\
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {xds}}}}}
            health_check_config: {{port_value: {api}}}
"""


class LoadBalancer(_Process):
    """An Envoy TCP proxy on `port` in front of the replicas' xDS ports."""

    def __init__(self, replicas: Iterable[ControlPlaneProcess], work: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        endpoints = "".join(_ENDPOINT.format(xds=r.xds_port, api=r.api_port) for r in replicas)
        config = work / "lb.yaml"
        config.write_text(_LB_CONFIG.format(admin=self.admin_port, port=self.port, endpoints=endpoints))
        args = [find_envoy(), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warn", "--disable-hot-restart"]
        super().__init__(args, work / "lb.log")

    def healthy(self) -> int:
        """How many replicas the balancer sends new connections to."""
        text = http_get(f"http://127.0.0.1:{self.admin_port}/stats?filter=cluster.replicas.membership_healthy")[1]
        return int(text.partition(": ")[2].strip() or 0)


@dataclass
class Frontend:
    """The control plane as a sidecar sees it behind the balancer (what EnvoyProcess reads)."""

    xds: str
    api: str
    ca_cert: Path | None
    keys_dir: Path
    dataplane_auth: bool = True

    def issue_token(self, name: str | None = None, mesh: str = "default", *, tags: Iterable[str] = (), valid_for: str = "24h") -> str:
        """A dataplane token signed with the shared keys: every replica accepts it."""
        args = [PYTHON, "-m", "reconciler", "token", "issue", "--keys-dir", str(self.keys_dir), "--mesh", mesh, "--valid-for", valid_for]
        if name:
            args += ["--name", name]
        for t in tags:
            args += ["--tags", t]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"reconciler token issue failed: {result.stderr}")
        return result.stdout.strip()


class Replicas:
    """`count` replicas of `reconciler serve` on one repository and keys, and their balancer."""

    def __init__(self, repo: str, root: Path, keys_dir: Path, *, count: int = 3, fetch_interval: float = 1.0) -> None:
        self.keys_dir = keys_dir
        self.members = [
            ControlPlaneProcess(
                repo,
                root / f"replica-{i}",
                extra=["--keys-dir", str(keys_dir), "--fetch-interval", str(fetch_interval)],
                shared_identity=False,
            )
            for i in range(count)
        ]
        self.lb = LoadBalancer(self.members, root)
        self.frontend = Frontend(f"127.0.0.1:{self.lb.port}", self.members[0].api, keys_dir / "xds-ca.crt", keys_dir)

    def start(self) -> None:
        for r in self.members:
            r.start()
        self.lb.start()
        wait_until(lambda: self.lb.healthy() == len(self.members), 20, what="every replica ready behind the balancer")

    def stop(self) -> None:
        self.lb.stop()
        for r in self.members:
            r.stop()

    def kill(self, replica: ControlPlaneProcess) -> None:
        """kill -9: no goodbye to the proxies, as a node that dies."""
        replica.stop(signal.SIGKILL)

    def restart(self, replica: ControlPlaneProcess) -> None:
        replica.start()
        wait_until(lambda: self.ready(replica), 20, what=f"replica {replica.api} ready again")
        wait_until(lambda: self.lb.healthy() == len(self.alive()), 10, what="the balancer sees the replica ready")

    def alive(self) -> list[ControlPlaneProcess]:
        return [r for r in self.members if r.alive()]

    @staticmethod
    def ready(replica: ControlPlaneProcess) -> bool:
        try:
            return http_get(replica.api + "/readyz", timeout=2)[0] == 200
        except OSError:
            return False

    def serving(self, node: str) -> ControlPlaneProcess | None:
        """The live replica `node` is connected to and synced with, if any."""
        for r in self.alive():
            proxy = ((r.status() or {}).get("proxies") or {}).get(node) or {}
            if proxy.get("connected") and proxy.get("synced"):
                return r
        return None

    def proxy_status(self, replica: ControlPlaneProcess, node: str) -> dict[str, Any]:
        return ((replica.status() or {}).get("proxies") or {}).get(node) or {}


def responses_received(envoy: EnvoyProcess) -> int:
    """xDS responses this Envoy took in, of every type (accepted or rejected): what a push costs it.

    The bootstrap's own clusters are left out: theirs count DNS resolutions, not responses."""
    clusters = json.loads(http_get(envoy.admin + "/clusters?format=json")[1]).get("cluster_statuses", [])
    static = tuple(f"cluster.{c['name']}." for c in clusters if not c.get("added_via_api"))
    return sum(v for k, v in envoy.stats().items() if k.endswith((".update_success", ".update_rejected")) and not k.startswith(static))


@dataclass
class Traffic:
    """Requests, one after another, to a sidecar's outbound listener until stopped; every
    answer that is not `expected` is kept with its time."""

    url: str
    expected: str
    interval: float = 0.02
    sent: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = http_get(self.url, timeout=5)
                answer = f"{status} {body.strip()}"
            except OSError as e:
                answer = f"error {e}"
            self.sent += 1
            if answer != self.expected:
                self.failures.append((time.monotonic(), answer))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @contextmanager
    def window(self) -> Iterator[dict[str, Any]]:
        """Counts what was sent, and what failed, while the block runs (filled in on exit)."""
        sent, failed = self.sent, len(self.failures)
        counts: dict[str, Any] = {}
        yield counts
        time.sleep(self.interval * 3)  # the request in flight at the end is counted too
        counts["sent"] = self.sent - sent
        counts["failures"] = self.failures[failed:]
