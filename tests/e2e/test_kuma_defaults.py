"""Kuma's Envoy defaults, seen in real traffic between two real sidecars (issue 12, items 7–9).

`web`'s sidecar calls `backend` through `backend`'s sidecar, which forwards to a test HTTP/1.1
workload that records each request's path and HTTP version. The Mesh skips Kuma's default
MeshTimeout, so no policy sets a request timeout: the case where Kuma's routes say `timeout: 0s`
and Envoy's implicit 15 s would otherwise apply. It skips the default MeshRetry too: its
`perTryTimeout: 16s` would cut (and retry) a 16.5 s answer, in Kuma as here.
"""

from __future__ import annotations

import http.client
import http.server
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from reconciler.xds.generate.names import inbound_listener, stat_prefix
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, wait_settled
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: [MeshTimeout, MeshRetry]\n"
SLOW = 16.5
"""Seconds the workload takes on /slow: more than Envoy's implicit 15 s route timeout."""

ROUTE = """\
type: MeshHTTPRoute
name: backend-v2
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path: {type: PathPrefix, value: /v2}
          default:
            filters:
              - type: ResponseHeaderModifier
                responseHeaderModifier:
                  set: [{name: x-route, value: v2}]
"""


@dataclass
class World:
    ports: dict[str, int]
    app: Workload
    web: EnvoyProcess
    backend: EnvoyProcess
    versions: list[str] = field(default_factory=list)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str | None, str]:
        """(status, x-route header, body) of a GET through web's outbound; the path is sent
        exactly as given (no client-side normalization)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["to_backend"], timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.getheader("x-route"), response.read().decode()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("kuma-defaults")
    repo = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "to_backend")}
    versions: list[str] = []

    def record(handler: http.server.BaseHTTPRequestHandler) -> bool:
        versions.append(handler.request_version)
        if handler.path == "/slow":
            time.sleep(SLOW)
        return False  # then answer as usual

    with Workload("backend", behaviour=record) as app:
        files = {
            "mesh.yaml": MESH,
            "web.yaml": dataplane_yaml("web", "web", ports["web_in"], free_port(), {"backend": ports["to_backend"]}),
            "backend.yaml": dataplane_yaml("backend-1", "backend", ports["backend_in"], app.port),
            "route.yaml": ROUTE,
        }
        sha = repo.push(files, "initial")
        cp = ControlPlaneProcess(repo.bare, root / "state")
        cp.start()
        web = EnvoyProcess(cp, root / "envoys", name="web")
        backend = EnvoyProcess(cp, root / "envoys", name="backend-1")
        try:
            web.start()
            backend.start()
            cp.wait_applied(sha, ["default.web", "default.backend-1"], timeout=30)
            wait_settled([web, backend])
            yield World(ports, app, web, backend, versions)
        finally:
            web.stop()
            backend.stop()
            cp.stop()


def test_sidecars_speak_http2_to_each_other_and_http1_to_the_application(world: World) -> None:
    inbound = stat_prefix(inbound_listener("127.0.0.1", world.ports["backend_in"]))
    before = world.backend.stats(f"http.{inbound}.downstream_cx_http2_total").get(f"http.{inbound}.downstream_cx_http2_total", 0)
    world.versions.clear()
    for _ in range(3):
        assert world.get("/hello") == (200, None, "backend\n")
    # The peer sidecar's inbound received HTTP/2 connections from web's sidecar ...
    after = world.backend.stats(f"http.{inbound}.downstream_cx_http2_total")[f"http.{inbound}.downstream_cx_http2_total"]
    assert after > before
    assert world.web.stats("cluster.backend.upstream_cx_http2_total")["cluster.backend.upstream_cx_http2_total"] >= 1
    # ... while the (HTTP/1.1-only) application was spoken to in HTTP/1.1.
    assert world.versions == ["HTTP/1.1"] * 3


def test_the_outbound_routes_on_the_normalized_path(world: World) -> None:
    # `/v1/../v2` is `/v2` once normalized: the /v2 rule catches it, and the workload sees /v2.
    assert world.get("/v1/../v2") == (200, "v2", "backend\n")
    assert world.app.requests["/v2"] >= 1
    assert world.get("/v2/./x/../y") == (200, "v2", "backend\n")
    assert world.app.requests["/v2/y"] >= 1
    # Kuma's sidecars keep `%2F` as sent (no unescaping): `/v2%2Fy` is not under /v2.
    assert world.get("/v2%2Fy") == (200, None, "backend\n")
    assert world.app.requests["/v2%2Fy"] == 1
    # Not a prefix on a segment boundary: /v2x is not under /v2.
    assert world.get("/v2x") == (200, None, "backend\n")


def test_without_a_meshtimeout_a_slow_answer_is_not_cut_at_envoys_implicit_15s(world: World) -> None:
    """Takes SLOW (16.5 s): the shortest wait that proves the route has no 15 s timeout."""
    started = time.monotonic()
    status, _, body = world.get("/slow", timeout=SLOW + 8)
    took = time.monotonic() - started
    assert (status, body) == (200, "backend\n"), (status, body, took)
    assert took >= SLOW
