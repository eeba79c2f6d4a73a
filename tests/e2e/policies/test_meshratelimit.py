"""MeshRateLimit in real Envoy: backend's sidecar limits the requests and connections it accepts.

One control plane, a client sidecar (web) and a backend sidecar are shared by the module; each
test pushes the whole configuration it needs and sends real traffic through web's outbound, so
what the tests see is what a client of the mesh sees.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

# No default policies: Kuma's default MeshRetry would retry rejected requests and blur the counts.
MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n"
PROXIES = ("default.web", "default.backend-1")


def http_limit(name: str, num: int, *, status: int | None = None, extra: str = "") -> str:
    on_limit = ""
    if status is not None:
        on_limit = f"""\
            onRateLimit:
              status: {status}
              headers:
                add:
                  - name: x-rate-limited
                    value: "yes"
                set:
                  - name: x-limit-policy
                    value: {name}
"""
    return f"""\
type: MeshRateLimit
mesh: default
name: {name}
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Sidecar]
  rules:
    - default:
        local:
          http:
            requestRate:
              num: {num}
              interval: 1m
{on_limit}{extra}"""


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    backend: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, policies: dict[str, str], backend_protocol: str = "http") -> dict[str, str | None]:
        """The mesh, both dataplanes and exactly `policies` (other policy files are deleted)."""
        p = self.ports
        files: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": dataplane_yaml("web", "web", p["web_in"], self.web.port, {"backend": p["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane_yaml(
                "backend-1", "backend", p["backend_in"], self.backend.port, protocol=backend_protocol
            ),
        }
        return files | self.remote.replace_directory("policies", policies)

    def apply(self, policies: dict[str, str], backend_protocol: str = "http") -> None:
        """Push `files(...)` and wait until both Envoys serve it."""
        sha = self.remote.push(self.files(policies, backend_protocol), "policies: " + ", ".join(policies) if policies else "no policies")
        self.cp.wait_applied(sha, PROXIES)
        # A changed listener warms, then drains its old connections (1s drain time); until then
        # web's pooled connection to the backend would still be served by the old filter chain.
        wait_until(
            lambda: all(self.envoys[name].listeners_settled() for name in ("web", "backend-1")),
            10,
            what="listeners warmed and old filter chains drained",
        )

    def get(self) -> tuple[int, dict[str, str]]:
        """One request through web's outbound on a new connection: status and response headers."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['web_to_backend']}/", headers={"Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
                return response.status, {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, {k.lower(): v for k, v in e.headers.items()}

    def tcp_exchange(self) -> bytes:
        """Open a TCP connection through web's outbound, send one HTTP request, read until close."""
        with socket.create_connection(("127.0.0.1", self.ports["web_to_backend"]), timeout=5) as s:
            try:
                s.sendall(b"GET /tcp HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)
            except ConnectionResetError:
                return b""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mrl")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "web_to_backend")}
    with Workload("web") as web, Workload("backend") as backend:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), web, backend, ports)
        first = remote.push(m.files({}), "initial config")
        m.cp.start()
        try:
            for name in ("web", "backend-1"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, PROXIES)
            wait_until(lambda: m.get()[0] == 200, 10, what="backend reachable through web's outbound")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def test_requests_over_the_limit_get_the_configured_status_and_headers(mesh: Mesh) -> None:
    mesh.apply({"limit": http_limit("three-a-minute", 3, status=423)})
    before = mesh.backend.total
    answers = [mesh.get() for _ in range(6)]
    assert [status for status, _ in answers] == [200, 200, 200, 423, 423, 423]
    # Only the requests under the limit reached the backend.
    assert mesh.backend.total - before == 3
    _, rejected = answers[-1]
    assert rejected.get("x-rate-limited") == "yes"
    assert rejected.get("x-limit-policy") == "three-a-minute"
    _, passed = answers[0]
    assert "x-rate-limited" not in passed


def test_without_on_rate_limit_envoy_answers_429(mesh: Mesh) -> None:
    mesh.apply({"limit": http_limit("two-a-minute", 2)})
    assert [mesh.get()[0] for _ in range(4)] == [200, 200, 429, 429]


def test_a_more_specific_policy_that_disables_the_limit_lets_every_request_pass(mesh: Mesh) -> None:
    unlimited = """\
type: MeshRateLimit
mesh: default
name: backend-unlimited
spec:
  targetRef:
    kind: Dataplane
    name: backend-1
  rules:
    - default:
        local:
          http:
            disabled: true
"""
    mesh.apply({"limit": http_limit("one-a-minute", 1, status=423), "unlimited": unlimited})
    assert [mesh.get()[0] for _ in range(5)] == [200] * 5


def test_fault_injection_runs_before_the_rate_limit(mesh: Mesh) -> None:
    abort_all = """\
type: MeshFaultInjection
mesh: default
name: abort-all
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Sidecar]
  from:
    - targetRef:
        kind: Mesh
      default:
        http:
          - abort:
              httpStatus: 503
              percentage: 100
"""
    mesh.apply({"limit": http_limit("one-a-minute-after-faults", 1, status=423), "faults": abort_all})
    # Every request is aborted by the fault filter before the rate limiter counts it; with the
    # limiter first, the second request on would be answered 423.
    assert [mesh.get()[0] for _ in range(4)] == [503] * 4


def test_connections_over_the_rate_are_closed(mesh: Mesh) -> None:
    connection_limit = """\
type: MeshRateLimit
mesh: default
name: two-connections-a-minute
spec:
  targetRef:
    kind: Dataplane
    name: backend-1
  rules:
    - default:
        local:
          tcp:
            connectionRate:
              num: 2
              interval: 1m
"""
    mesh.apply({"connections": connection_limit}, backend_protocol="tcp")
    stat = "local_rate_limit.tcp_rate_limit.rate_limited"
    limited_before = mesh.envoys["backend-1"].stats(stat).get(stat, 0)
    before = mesh.backend.requests["/tcp"]
    answers = [mesh.tcp_exchange() for _ in range(4)]
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"", b""]
    assert mesh.backend.requests["/tcp"] - before == 2
    # The two closed connections are the ones Envoy's network filter rate-limited.
    assert mesh.envoys["backend-1"].stats(stat).get(stat, 0) - limited_before == 2
