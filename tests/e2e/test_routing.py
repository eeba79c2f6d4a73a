"""MeshHTTPRoute and MeshTCPRoute with real Envoys and real traffic: canary weights, header
matches, filters, and TCP splits, each changed by `git push`."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\n"


def canary(v1: int, v2: int, *, header_rule: bool = True) -> str:
    header = (
        """\
        - matches:
            - path: {type: PathPrefix, value: /}
              headers:
                - {type: Exact, name: x-version, value: v2}
          default:
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v2}}
"""
        if header_rule
        else ""
    )
    return f"""\
type: MeshHTTPRoute
name: backend-canary
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
{header}        - matches:
            - path: {{type: PathPrefix, value: /}}
          default:
            backendRefs:
              - {{kind: MeshServiceSubset, name: backend, tags: {{version: v1}}, weight: {v1}}}
              - {{kind: MeshServiceSubset, name: backend, tags: {{version: v2}}, weight: {v2}}}
"""


FILTERS = """\
type: MeshHTTPRoute
name: backend-filters
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
            - path: {type: PathPrefix, value: /legacy}
          default:
            filters:
              - type: URLRewrite
                urlRewrite:
                  path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2api}
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  add: [{name: x-migrated, value: "yes"}]
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v1}}
        - matches:
            - path: {type: Exact, value: /old-home}
          default:
            filters:
              - type: RequestRedirect
                requestRedirect:
                  scheme: https
                  hostname: new.example.com
                  path: {type: ReplaceFullPath, replaceFullPath: /home}
                  statusCode: 301
        - matches:
            - path: {type: PathPrefix, value: /}
          default:
            filters:
              - type: ResponseHeaderModifier
                responseHeaderModifier:
                  set: [{name: x-route, value: catch-all}]
            backendRefs:
              - {kind: MeshServiceSubset, name: backend, tags: {version: v1}}
"""


def tcp_route(a: int, b: int) -> str:
    return f"""\
type: MeshTCPRoute
name: echo-split
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: echo
      rules:
        - default:
            backendRefs:
              - {{kind: MeshService, name: echo-a, weight: {a}}}
              - {{kind: MeshService, name: echo-b, weight: {b}}}
"""


class Echo:
    """A TCP server that answers each connection with its name."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.name)

    def close(self) -> None:
        self.sock.close()


@dataclass
class World:
    remote: ControlPlaneProcess
    repo: ConfigRemote
    ports: dict[str, int]
    v1: Workload
    v2: Workload
    echo_a: Echo
    echo_b: Echo
    nodes: list[str]
    envoys: list[EnvoyProcess] = field(default_factory=list)

    def files(self, *routes: str) -> dict[str, str | None]:
        p = self.ports
        return {
            "mesh.yaml": MESH,
            "web.yaml": dataplane_yaml(
                "web-1", "web", p["web_in"], free_port(), outbounds={"backend": p["to_backend"], "echo": p["to_echo"]}
            ),
            "backend-v1.yaml": dataplane_yaml("backend-v1", "backend", p["v1_in"], self.v1.port, tags={"version": "v1"}),
            "backend-v2.yaml": dataplane_yaml("backend-v2", "backend", p["v2_in"], self.v2.port, tags={"version": "v2"}),
            "echo.yaml": dataplane_yaml("echo-1", "echo", p["echo_in"], self.echo_a.port, protocol="tcp"),
            "echo-a.yaml": dataplane_yaml("echo-a-1", "echo-a", p["echo_a_in"], self.echo_a.port, protocol="tcp"),
            "echo-b.yaml": dataplane_yaml("echo-b-1", "echo-b", p["echo_b_in"], self.echo_b.port, protocol="tcp"),
            "routes.yaml": "---\n".join(routes) if routes else None,
        }

    def apply(self, *routes: str) -> str:
        sha = self.repo.push(self.files(*routes))
        self.remote.wait_applied(sha, self.nodes, timeout=30)
        wait_settled(self.envoys)
        return sha

    def get(self, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports['to_backend']}{path}", headers)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("routing")
    repo = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "v1_in", "v2_in", "echo_in", "echo_a_in", "echo_b_in", "to_backend", "to_echo")}
    echo_a, echo_b = Echo("a"), Echo("b")
    with Workload("v1") as v1, Workload("v2") as v2:
        cp = ControlPlaneProcess(repo.bare, root / "state")
        names = ["web-1", "backend-v1", "backend-v2", "echo-a-1", "echo-b-1"]
        w = World(cp, repo, ports, v1, v2, echo_a, echo_b, [f"default.{n}" for n in names])
        first = repo.push(w.files(), "initial")
        cp.start()
        envoys = [EnvoyProcess(cp, root / "envoys", name=n) for n in names]
        w.envoys = envoys
        try:
            for e in envoys:
                e.start()
            cp.wait_applied(first, w.nodes, timeout=30)
            yield w
        finally:
            for e in envoys:
                e.stop()
            cp.stop()
            echo_a.close()
            echo_b.close()


def shares(world: World, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    return Counter(world.get("/", headers)[1].strip() for _ in range(n))


def test_canary_weights_split_traffic_and_a_push_moves_it_without_failures(world: World) -> None:
    world.apply(canary(90, 10))
    counts = shares(world, 1000)
    assert set(counts) == {"v1", "v2"}
    assert 70 <= counts["v2"] <= 130, counts  # 10% ± 3
    failures: list[object] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, _ = world.get("/")
            except Exception as e:  # reported below
                status = repr(e)  # type: ignore[assignment]
            if status != 200:
                failures.append(status)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        world.apply(canary(0, 100))
        pushed = time.monotonic()
        wait_until(lambda: shares(world, 20) == Counter({"v2": 20}), 5, 0.01, "all traffic on v2")
        moved_after = time.monotonic() - pushed
    finally:
        stop.set()
        worker.join(10)
    assert moved_after < 1.0
    assert failures == []
    assert shares(world, 100) == Counter({"v2": 100})


def test_header_match_pins_testers_to_v2_while_others_keep_the_weights(world: World) -> None:
    world.apply(canary(100, 0))
    assert shares(world, 100, {"x-version": "v2"}) == Counter({"v2": 100})
    assert shares(world, 100) == Counter({"v1": 100})


def test_rewrite_redirect_and_header_filters_are_seen_by_upstream_and_client(world: World) -> None:
    world.apply(FILTERS)
    world.v1.requests.clear()
    status, body = world.get("/legacy/orders")
    assert (status, body) == (200, "v1\n")
    assert world.v1.requests == Counter({"/v2api/orders": 1})
    assert {k.lower(): v for k, v in world.v1.headers[-1].items()}.get("x-migrated") == "yes"
    conn = http.client.HTTPConnection("127.0.0.1", world.ports["to_backend"], timeout=5)
    conn.request("GET", "/old-home")
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("location") == "https://new.example.com/home"
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", world.ports["to_backend"], timeout=5)
    conn.request("GET", "/anything")
    response = conn.getresponse()
    assert (response.status, response.getheader("x-route")) == (200, "catch-all")
    conn.close()


def tcp_answers(world: World, n: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", world.ports["to_echo"]), timeout=3) as s:
            out[s.recv(16).decode()] += 1
    return out


def test_tcp_route_weights_split_connections(world: World) -> None:
    world.apply(tcp_route(75, 25))
    counts = tcp_answers(world, 400)
    assert set(counts) == {"a", "b"}
    assert 60 <= counts["b"] <= 140, counts  # 25% of 400 ± 10 points
    world.apply(tcp_route(0, 100))
    assert wait_until(lambda: tcp_answers(world, 10) == Counter({"b": 10}), 5, 0.02, "all connections on b")
