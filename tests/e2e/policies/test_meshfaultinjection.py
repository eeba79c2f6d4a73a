"""MeshFaultInjection in real Envoy: backend's sidecar aborts and delays the requests it receives.

One control plane, a client sidecar (web) and a backend sidecar are shared by the module; each
test pushes the whole configuration it needs and sends real traffic through web's outbound.
"""

from __future__ import annotations

import http.client
import http.server
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_until
from tests.support import ALLOW_ALL, dataplane_yaml

pytestmark = pytest.mark.envoy

# No default policies: Kuma's default MeshRetry would retry aborted requests and hide them.
MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n"
MTLS_MESH = MESH + "mtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n"
# With mTLS and no default policies, traffic needs an explicit permission.
PROXIES = ("default.web", "default.backend-1")


def faults(name: str, section: str, http: str, matches: str = "") -> str:
    """A policy on every sidecar with one `from` (Mesh) or `rules` entry holding `http`."""
    entry = "    - targetRef:\n        kind: Mesh\n" if section == "from" else "    -\n" + matches
    return f"""\
type: MeshFaultInjection
mesh: default
name: {name}
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Sidecar]
  {section}:
{entry}      default:
        http:
{http}"""


def one_write(handler: http.server.BaseHTTPRequestHandler) -> bool:
    """Answer in a single write: the default handler writes headers and body separately, and
    Nagle's algorithm against a delayed ACK then costs each kept-alive request 40 ms."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nbackend\n")
    return True


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    backend: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, policies: dict[str, str], mesh: str = MESH) -> dict[str, str | None]:
        """The mesh, both dataplanes and exactly `policies` (other policy files are deleted)."""
        p = self.ports
        files: dict[str, str | None] = {
            "mesh.yaml": mesh,
            "dataplanes/web.yaml": dataplane_yaml("web", "web", p["web_in"], self.web.port, {"backend": p["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
        }
        return files | self.remote.replace_directory("policies", policies)

    def apply(self, policies: dict[str, str], mesh: str = MESH) -> None:
        """Push `files(...)` and wait until both Envoys serve it on every connection."""
        sha = self.remote.push(self.files(policies, mesh), "policies: " + ", ".join(policies) if policies else "no policies")
        self.cp.wait_applied(sha, PROXIES)
        # A changed listener warms, then drains its old connections (1s drain time); until then
        # web's pooled connection to the backend would still be served by the old filter chain.
        wait_until(
            lambda: all(self.envoys[name].listeners_settled() for name in ("web", "backend-1")),
            10,
            what="listeners warmed and old filter chains drained",
        )

    def requests(self, count: int) -> list[tuple[int, float]]:
        """`count` requests through web's outbound on one kept-alive connection: (status, seconds)."""
        out = []
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["web_to_backend"], timeout=10)
        try:
            for _ in range(count):
                start = time.monotonic()
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                out.append((response.status, time.monotonic() - start))
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.ports["web_to_backend"], timeout=10)
        finally:
            conn.close()
        return out

    def statuses(self, count: int) -> Counter[int]:
        return Counter(status for status, _ in self.requests(count))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mfi")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "web_to_backend")}
    with Workload("web") as web, Workload("backend", behaviour=one_write) as backend:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), web, backend, ports)
        first = remote.push(m.files({}), "initial config")
        m.cp.start()
        try:
            for name in ("web", "backend-1"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, PROXIES)
            wait_until(lambda: m.statuses(1) == {200: 1}, 10, what="backend reachable through web's outbound")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def test_abort_of_every_request_answers_with_the_configured_status(mesh: Mesh) -> None:
    abort = "          - abort:\n              httpStatus: 418\n              percentage: 100\n"
    mesh.apply({"abort": faults("abort-all", "from", abort)})
    before = mesh.backend.total
    assert mesh.statuses(50) == {418: 50}
    assert mesh.backend.total == before  # aborted in backend's sidecar, never forwarded


def test_abort_percentage_aborts_that_share_of_requests(mesh: Mesh) -> None:
    # A decimal percentage, as Kuma writes it: 5050 per TEN_THOUSAND. A rule without matches
    # (a fault filter wrapped in an empty matcher) applies to every client.
    abort = "          - abort:\n              httpStatus: 503\n              percentage: '50.5'\n"
    mesh.apply({"abort": faults("abort-half", "rules", abort)})
    before = mesh.backend.total
    total = 400
    seen = mesh.statuses(total)
    assert set(seen) <= {200, 503}, seen
    # Binomial(400, 0.505): mean 202, standard deviation 10; ±50 is five of them.
    assert 152 <= seen[503] <= 252, seen
    assert mesh.backend.total - before == seen[200]


def test_delay_is_observable_in_the_response_time(mesh: Mesh) -> None:
    mesh.apply({})
    baseline = [seconds for status, seconds in mesh.requests(5) if status == 200]
    delay = "          - delay:\n              value: 800ms\n              percentage: 100\n"
    mesh.apply({"delay": faults("slow", "from", delay)})
    delayed = mesh.requests(3)
    assert [status for status, _ in delayed] == [200, 200, 200]
    # Envoy's timer may fire a millisecond early.
    assert min(seconds for _, seconds in delayed) >= 0.79, delayed
    assert len(baseline) == 5 and statistics.median(baseline) < 0.4, baseline


def test_without_mtls_rules_matching_a_client_identity_abort_nothing(mesh: Mesh) -> None:
    # No client presents a certificate: no SPIFFE ID can match, so no request is aborted, while
    # a rule without matches on the same listener still applies to every client.
    abort = "          - abort:\n              httpStatus: 418\n              percentage: 100\n"
    matched = "      matches:\n        - spiffeID:\n            type: Prefix\n            value: spiffe://default\n"
    mesh.apply({"matched": faults("abort-everyone-with-an-id", "rules", abort, matches=matched)})
    assert mesh.statuses(10) == {200: 10}
    delay = "          - delay:\n              value: 300ms\n              percentage: 100\n"
    mesh.apply({"matched": faults("abort-everyone-with-an-id", "rules", abort, matches=matched), "all": faults("slow-all", "rules", delay)})
    answers = mesh.requests(3)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert min(seconds for _, seconds in answers) >= 0.29, answers


def test_rules_matching_a_client_identity_abort_only_that_client(mesh: Mesh) -> None:
    # With mTLS, web's sidecar presents spiffe://default/web; only the rule for web fires.
    def abort(status: int) -> str:
        return f"          - abort:\n              httpStatus: {status}\n              percentage: 100\n"

    def client(spiffe_id: str) -> str:
        return f"      matches:\n        - spiffeID:\n            type: Exact\n            value: {spiffe_id}\n"

    # The rule for another client targets the whole mesh, so its filter comes first: a 503
    # would mean it was not skipped for web.
    for_web = faults("abort-web", "rules", abort(418), client("spiffe://default/web"))
    for_web = for_web.replace("    kind: Mesh\n    proxyTypes: [Sidecar]\n", "    kind: Dataplane\n    name: backend-1\n")
    policies = {
        "web": for_web,
        "other": faults("abort-other", "rules", abort(503), client("spiffe://default/other")),
        "allow": ALLOW_ALL,
    }
    mesh.apply(policies, MTLS_MESH)
    before = mesh.backend.total
    assert mesh.statuses(20) == {418: 20}
    assert mesh.backend.total == before
