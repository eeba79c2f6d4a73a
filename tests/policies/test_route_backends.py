"""Where an outbound's traffic goes when routes name odd backends, as Kuma v2.14.3 decides it.

- A MeshTCPRoute on an HTTP service with no MeshHTTPRoute makes that outbound a TCP proxy to
  the route's backends; with a MeshHTTPRoute too, the MeshHTTPRoute wins (Kuma's meshtcproute
  getBackendRefs; goldens redirect-traffic, meshhttproute-clash-http-destination).
- A MeshHTTPRoute backend naming nothing the mesh has, or a service that does not speak HTTP,
  is left out of the route's split, and a rule left without a backend is no route, so its requests fall through to the next match
  (Kuma's MakeHTTPSplit; golden unresolvable-backend).
- Two outbounds to two ports of one MeshService get one gRPC API listener each, named as Kuma
  names the destination.
"""

from __future__ import annotations

from typing import Any

from reconciler.mesh.model import build_mesh_model
from reconciler.views.proxy import proxy_views
from tests.support import generate_checked, snapshot_of_text, validate_text

MESH = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: default
name: web
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags: {kuma.io/service: web, kuma.io/protocol: http}
  outbound:
    - port: 10001
      tags: {kuma.io/service: backend}
    - port: 10002
      tags: {kuma.io/service: tcp-backend}
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - port: 8080
      tags: {kuma.io/service: backend, kuma.io/protocol: http, version: v1}
---
type: Dataplane
mesh: default
name: tcp-backend-1
networking:
  address: 10.0.0.3
  inbound:
    - port: 9000
      tags: {kuma.io/service: tcp-backend, kuma.io/protocol: tcp}
---
"""

TCP_ROUTE = """\
type: MeshTCPRoute
mesh: default
name: to-tcp
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - default:
            backendRefs: [{kind: MeshService, name: tcp-backend}]
---
"""

HTTP_ROUTE = """\
type: MeshHTTPRoute
mesh: default
name: http
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /v2}}]
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: no-such-service, tags: {version: v2}}
        - matches: [{path: {type: PathPrefix, value: /half}}]
          default:
            backendRefs:
              - {kind: MeshService, name: typo-backend, weight: 50}
              - {kind: MeshService, name: backend, weight: 50}
        - matches: [{path: {type: PathPrefix, value: /ext}}]
          default:
            backendRefs: [{kind: MeshExternalService, name: no-such-external}]
        - matches: [{path: {type: PathPrefix, value: /tcp}}]
          default:
            backendRefs: [{kind: MeshService, name: tcp-backend}]
        - matches: [{path: {type: PathPrefix, value: /port}}]
          default:
            backendRefs: [{kind: MeshService, name: backend, port: 80}]
        - matches: [{path: {type: PathPrefix, value: /v1}}]
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v1}}
---
"""


def resources(text: str, node: str = "default.web") -> dict[tuple[str, str], dict[str, Any]]:
    report = validate_text(text)
    assert report.valid, [p.render() for p in report.errors]
    view = proxy_views(build_mesh_model(snapshot_of_text(text).resources))[node]
    return {(r.type_url.rsplit(".", 1)[-1], r.name): r.to_dict() for r in generate_checked(view)}


def network_filter(listener: dict[str, Any]) -> dict[str, Any]:
    filters: list[dict[str, Any]] = listener["filterChains"][0]["filters"]
    assert len(filters) == 1
    return filters[0]


def routes_of(listener: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = network_filter(listener)["typedConfig"]
    found: list[dict[str, Any]] = hcm["routeConfig"]["virtualHosts"][0]["routes"]
    return found


def test_a_meshtcproute_on_an_http_service_without_a_meshhttproute_makes_its_outbound_a_tcp_proxy() -> None:
    out = resources(MESH + TCP_ROUTE)
    listener = out[("Listener", "outbound:127.0.0.1:10001")]
    proxy = network_filter(listener)
    assert proxy["name"] == "envoy.filters.network.tcp_proxy"
    assert proxy["typedConfig"]["cluster"] == "tcp-backend"
    assert ("Cluster", "tcp-backend") in out
    # No gRPC API listener for it: a proxyless client cannot speak HTTP over a TCP route.
    assert ("Listener", "backend") not in out


def test_with_a_meshhttproute_for_the_same_service_the_meshhttproute_wins() -> None:
    out = resources(MESH + TCP_ROUTE + HTTP_ROUTE)
    listener = out[("Listener", "outbound:127.0.0.1:10001")]
    assert network_filter(listener)["name"] == "envoy.filters.network.http_connection_manager"
    assert all(r["route"].get("cluster") != "tcp-backend" for r in routes_of(listener) if "route" in r)


def test_without_any_route_an_http_outbound_stays_http() -> None:
    out = resources(MESH)
    assert network_filter(out[("Listener", "outbound:127.0.0.1:10001")])["name"] == "envoy.filters.network.http_connection_manager"


def test_a_rule_whose_backends_name_nothing_known_is_left_out_and_unknown_backends_leave_the_split() -> None:
    out = resources(MESH + HTTP_ROUTE)
    routes = routes_of(out[("Listener", "outbound:127.0.0.1:10001")])
    by_match = {next(iter(r["match"].values())): r for r in routes}
    # /v2 (a subset of no service), /ext (no such MeshExternalService), /port (backend has no
    # MeshService) and /tcp (a TCP service: not for HTTP) are gone: such requests fall through
    # to the catch-all to backend. (A PathPrefix is Kuma's pair of routes, `/half` and `/half/`.)
    assert sorted(by_match) == ["/", "/half", "/half/", "/v1", "/v1/"]
    assert by_match["/"]["route"]["cluster"] == "backend"
    # The unknown half of /half is left out of the split: every request goes to backend.
    assert by_match["/half"]["route"]["cluster"] == "backend"
    # No empty cluster is made for what does not exist.
    clusters = {name for kind, name in out if kind == "Cluster"}
    assert not any("no-such" in c or "typo" in c or "msvc" in c for c in clusters), clusters
    assert any(c.startswith("backend-") for c in clusters)  # the v1 subset is kept


def test_a_rule_matching_slash_with_an_unknown_backend_leaves_no_catch_all() -> None:
    # Kuma adds the catch-all only when no rule matches `/`; the rule is then left out, so a
    # request matching no other route gets Envoy's 404 rather than an empty cluster's 503.
    route = HTTP_ROUTE.replace("value: /v2", "value: /")
    routes = routes_of(resources(MESH + route)[("Listener", "outbound:127.0.0.1:10001")])
    assert [next(iter(r["match"].values())) for r in routes] == ["/half", "/half/", "/v1", "/v1/"]


MESH_SERVICE_PORTS = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: default
name: web
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags: {kuma.io/service: web, kuma.io/protocol: http}
  outbound:
    - port: 10001
      backendRef: {kind: MeshService, name: backend, port: 80}
    - port: 10002
      backendRef: {kind: MeshService, name: backend, port: 81}
    - port: 10003
      tags: {kuma.io/service: legacy}
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - {name: main, port: 8080, tags: {kuma.io/service: backend, kuma.io/protocol: grpc}}
    - {name: admin, port: 8081, tags: {kuma.io/service: backend, kuma.io/protocol: grpc}}
    - {port: 8082, tags: {kuma.io/service: legacy, kuma.io/protocol: grpc}}
---
type: MeshService
name: backend
mesh: default
spec:
  selector:
    dataplaneTags: {kuma.io/service: backend}
  ports:
    - {name: main, port: 80, targetPort: main, appProtocol: grpc}
    - {name: admin, port: 81, targetPort: admin, appProtocol: grpc}
---
type: MeshHTTPRoute
mesh: default
name: admin-only
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend, sectionName: admin}
      rules:
        - matches: [{path: {type: PathPrefix, value: /admin.Admin}}]
          default: {}
---
"""


def test_each_outbound_to_a_meshservice_port_gets_its_own_grpc_api_listener() -> None:
    out = resources(MESH_SERVICE_PORTS)
    api = {name: doc for (kind, name), doc in out.items() if kind == "Listener" and "apiListener" in doc}
    assert sorted(api) == ["default_backend___msvc_80", "default_backend___msvc_81", "legacy"]

    def matches(name: str) -> list[str]:
        hcm = api[name]["apiListener"]["apiListener"]
        return [next(iter(r["match"].values())) for r in hcm["routeConfig"]["virtualHosts"][0]["routes"]]

    # Port 81 has the admin route, port 80 only the catch-all: each listener routes its own port.
    assert matches("default_backend___msvc_81")[0].startswith("/admin.Admin")
    assert matches("default_backend___msvc_80") == ["/"]
    assert matches("legacy") == ["/"]
