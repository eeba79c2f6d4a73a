"""Policies on builtin gateway listeners, in real Envoy: a targetRef `{kind: MeshGateway, tags}`
reaches only the listeners whose tags match (Kuma's GatewayRules.ByListener).

One control plane, the gateway proxy and one HTTP sidecar (shop) are shared by the module. The
MeshGateway has three HTTP listeners, tagged `listener: public`, `internal` and `admin`; one
MeshHTTPRoute on the whole gateway sends everything to shop. A MeshRateLimit aimed at the
public listener allows 3 requests per hour there; a MeshFaultInjection aimed at the internal
listener aborts every request with 418; the admin listener has neither. Each test uses its own
listener, so the rate limit's bucket is only ever spent by the test that counts it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_until

pytestmark = pytest.mark.envoy

PROXIES = ("default.edge-1", "default.shop-1")
LIMIT = 3


def files(ports: dict[str, int], shop_port: int) -> dict[str, str | None]:
    return {
        "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
        "dataplanes/edge.yaml": """\
type: Dataplane
mesh: default
name: edge-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge
""",
        "dataplanes/shop.yaml": f"""\
type: Dataplane
mesh: default
name: shop-1
networking:
  address: 127.0.0.1
  inbound:
    - port: {ports["shop_in"]}
      servicePort: {shop_port}
      tags:
        kuma.io/service: shop
        kuma.io/protocol: http
""",
        "gateway.yaml": f"""\
type: MeshGateway
mesh: default
name: edge
selectors:
  - match:
      kuma.io/service: edge
conf:
  listeners:
    - port: {ports["public"]}
      protocol: HTTP
      tags: {{listener: public}}
    - port: {ports["internal"]}
      protocol: HTTP
      tags: {{listener: internal}}
    - port: {ports["admin"]}
      protocol: HTTP
      tags: {{listener: admin}}
""",
        "routes/shop.yaml": """\
type: MeshHTTPRoute
name: shop
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
  to:
    - targetRef:
        kind: Mesh
      rules:
        - matches:
            - path: {type: PathPrefix, value: /}
          default:
            backendRefs:
              - kind: MeshService
                name: shop
""",
        "policies/rate-limit.yaml": f"""\
type: MeshRateLimit
name: public-limit
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
    tags: {{listener: public}}
  to:
    - targetRef:
        kind: Mesh
      default:
        local:
          http:
            requestRate: {{num: {LIMIT}, interval: 1h}}
            onRateLimit:
              headers:
                add:
                  - {{name: x-rate-limited, value: public}}
""",
        "policies/faults.yaml": """\
type: MeshFaultInjection
name: internal-faults
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
    tags: {listener: internal}
  to:
    - targetRef:
        kind: Mesh
      default:
        http:
          - abort: {httpStatus: 418, percentage: 100}
""",
    }


@dataclass
class Edge:
    cp: ControlPlaneProcess
    shop: Workload
    ports: dict[str, int]
    envoys: list[EnvoyProcess] = field(default_factory=list)

    def get(self, listener: str, path: str = "/") -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[listener]}{path}", headers={"Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root: Path = tmp_path_factory.mktemp("gateway-policies")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("public", "internal", "admin", "shop_in")}
    with Workload("shop") as shop:
        e = Edge(ControlPlaneProcess(remote.bare, root / "state"), shop, ports)
        sha = remote.push(files(ports, shop.port), "gateway with three tagged listeners, a rate limit and a fault")
        e.cp.start()
        try:
            for name in ("edge-1", "shop-1"):
                envoy = EnvoyProcess(e.cp, root / "envoys", name=name)
                e.envoys.append(envoy)
                envoy.start(wait=False)
            for envoy in e.envoys:
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            e.cp.wait_applied(sha, PROXIES)
            # The admin listener is untouched by both policies: it shows when the gateway routes.
            wait_until(lambda: e.get("admin")[0] == 200, 15, what="the gateway routing to shop")
            yield e
        finally:
            for envoy in e.envoys:
                envoy.stop()
            e.cp.stop()


def test_rate_limit_aimed_at_a_listener_tag_limits_that_listener_only(edge: Edge) -> None:
    before = edge.shop.total
    public = [edge.get("public", f"/p{i}") for i in range(LIMIT + 3)]
    assert [status for status, _, _ in public] == [200] * LIMIT + [429] * 3
    assert all(headers.get("x-rate-limited") == "public" for status, _, headers in public if status == 429)
    assert all(body == "shop\n" for status, body, _ in public if status == 200)
    # The admin listener of the same gateway, same route, same backend: never limited.
    assert [edge.get("admin", f"/a{i}")[0] for i in range(LIMIT + 3)] == [200] * (LIMIT + 3)
    # Limited requests never reached shop.
    assert edge.shop.total == before + LIMIT + (LIMIT + 3)


def test_fault_injection_aimed_at_a_listener_tag_aborts_there_only(edge: Edge) -> None:
    before = edge.shop.requests["/faulted"]
    status, body, _ = edge.get("internal", "/faulted")
    assert (status, body) == (418, "fault filter abort")
    assert edge.shop.requests["/faulted"] == before  # Envoy answered itself
    assert edge.get("admin", "/faulted")[:2] == (200, "shop\n")
    assert edge.shop.requests["/faulted"] == before + 1
