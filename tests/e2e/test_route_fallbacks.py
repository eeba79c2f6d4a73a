"""Routes that Kuma v2.14.3 resolves in a way a user only notices in traffic, with real Envoys:

- a MeshTCPRoute on an HTTP service (and no MeshHTTPRoute) turns its outbound into a TCP
  proxy: the bytes reach the route's TCP backend; a MeshHTTPRoute for the service wins again;
- a MeshHTTPRoute rule whose only backend names no known service is left out, so a request to
  its path falls through to the next matching route and succeeds (not an empty cluster's 503).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, serving, wait_settled
from tests.e2e.test_routing import Echo
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

TCP_ROUTE = """\
type: MeshTCPRoute
name: backend-to-echo
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - default:
            backendRefs: [{kind: MeshService, name: echo}]
"""

HTTP_ROUTE = """\
type: MeshHTTPRoute
name: backend-routes
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /v2}}]
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: backend-next, tags: {version: v2}}
        - matches: [{path: {type: PathPrefix, value: /v1}}]
          default:
            backendRefs: [{kind: MeshService, name: backend}]
"""


@dataclass
class World:
    cp: ControlPlaneProcess
    repo: ConfigRemote
    ports: dict[str, int]
    backend: Workload
    echo: Echo
    nodes: list[str]
    envoys: list[EnvoyProcess] = field(default_factory=list)

    def files(self, *routes: str) -> dict[str, str | None]:
        p = self.ports
        return {
            "mesh.yaml": "type: Mesh\nname: default\n",
            "web.yaml": dataplane_yaml("web-1", "web", p["web_in"], free_port(), outbounds={"backend": p["to_backend"]}),
            "backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port, tags={"version": "v1"}),
            "echo.yaml": dataplane_yaml("echo-1", "echo", p["echo_in"], self.echo.port, protocol="tcp"),
            "routes.yaml": "---\n".join(routes) if routes else None,
        }

    def apply(self, *routes: str) -> None:
        sha = self.repo.push(self.files(*routes))
        self.cp.wait_applied(sha, self.nodes, timeout=30)
        wait_settled(self.envoys)

    def get(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports['to_backend']}{path}")

    def tcp_answer(self) -> str:
        with socket.create_connection(("127.0.0.1", self.ports["to_backend"]), timeout=3) as s:
            return s.recv(16).decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("route-fallbacks")
    repo = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "echo_in", "to_backend")}
    echo = Echo("echo")
    with Workload("backend") as backend:
        cp = ControlPlaneProcess(repo.bare, root / "state")
        names = ["web-1", "backend-1", "echo-1"]
        w = World(cp, repo, ports, backend, echo, [f"default.{n}" for n in names])
        first = repo.push(w.files(), "initial")
        try:
            with serving(cp, root / "envoys", names, first) as envoys:
                w.envoys = list(envoys.values())
                yield w
        finally:
            echo.close()


def test_a_tcp_route_on_an_http_service_carries_its_bytes_to_the_tcp_backend(world: World) -> None:
    world.apply(TCP_ROUTE)
    # The outbound is a TCP proxy now: the echo server's greeting arrives without any request.
    assert world.tcp_answer() == "echo"
    # With a MeshHTTPRoute for the same service too, the MeshHTTPRoute wins: HTTP to backend.
    world.apply(TCP_ROUTE, HTTP_ROUTE)
    assert world.get("/v1/orders") == (200, "backend\n")


def test_a_request_for_a_rule_with_an_unknown_backend_falls_through_to_the_next_route(world: World) -> None:
    world.apply(HTTP_ROUTE)
    world.backend.requests.clear()
    assert world.get("/v2/orders") == (200, "backend\n")
    assert world.get("/v1/orders") == (200, "backend\n")
    assert world.backend.requests == {"/v2/orders": 1, "/v1/orders": 1}
