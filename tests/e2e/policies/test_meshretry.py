"""MeshRetry in real Envoy: a request the upstream fails a few times reaches the caller as a
success when retries cover the failures, and as the failure when they do not; TCP connection
attempts go to another endpoint when one refuses.

One control plane and two sidecars are shared by the module: `web` (the client, with outbounds
to `flaky` and `db`) and `flaky-1` (in front of an HTTP workload that fails the first N
requests of each path). `db` has no sidecar: its two endpoints are a TCP echo server and a port
where nothing listens (every connection refused). Each test pushes the whole configuration it
needs. MeshCircuitBreaker's default is skipped: its outlier detection would eject the
failing upstream, which is not what these tests look at.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.harness import (
    ConfigRemote,
    ControlPlaneProcess,
    EnvoyProcess,
    Workload,
    free_port,
    http_get,
    outbound_listeners,
    route_configs,
    wait_settled,
)
from tests.e2e.tcp import EchoServer
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = """\
type: Mesh
name: default
# Only MeshRetry is under test: Kuma's default circuit breaker ejects an upstream that fails.
skipCreatingInitialPolicies: [MeshCircuitBreaker]
"""


class FailFirst:
    """Workload behaviour: `GET /fail/<n>/<status>/<key>` answers `<status>` to the first n
    requests of that path, then 200; it counts every request it sees per path."""

    PATH = re.compile(r"^/fail/([0-9]+)/([0-9]{3})/[A-Za-z0-9-]+$")

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, handler: http.server.BaseHTTPRequestHandler) -> bool:
        match = self.PATH.match(handler.path)
        if not match:
            return False
        with self.lock:
            self.seen[handler.path] += 1
            attempt = self.seen[handler.path]
        if attempt > int(match.group(1)):
            return False  # the workload's normal 200
        body = f"failure {attempt}\n".encode()
        handler.send_response(int(match.group(2)))
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True


def web_retries(service: str, conf: str) -> str:
    """A MeshRetry for web's calls to `service`; Dataplane-targeted, so it merges over Kuma's
    mesh-wide default."""
    return f"""\
type: MeshRetry
name: web-to-{service}
mesh: default
spec:
  targetRef:
    kind: Dataplane
    name: web
  to:
    - targetRef:
        kind: MeshService
        name: {service}
      default:
{conf}"""


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    flaky: FailFirst
    echo: EchoServer
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)
    keys: Counter[str] = field(default_factory=Counter)

    def files(self, policies: dict[str, str] | None = None) -> dict[str, str | None]:
        p = self.ports
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": dataplane_yaml(
                "web", "web", p["web_in"], p["web_app"], outbounds={"flaky": p["to_flaky"], "db": p["to_db"]}
            ),
            "dataplanes/flaky.yaml": dataplane_yaml("flaky-1", "flaky", p["flaky_in"], p["flaky_app"]),
            # No sidecars: web's Envoy connects straight to these two ports.
            "dataplanes/db-1.yaml": dataplane_yaml("db-1", "db", self.echo.port, self.echo.port, protocol="tcp"),
            "dataplanes/db-2.yaml": dataplane_yaml("db-2", "db", p["db_refused"], p["db_refused"], protocol="tcp"),
        }
        return out | self.remote.replace_directory("policies", policies)

    def apply(self, policies: dict[str, str] | None = None) -> None:
        sha = self.remote.push(self.files(policies), "retries")
        self.cp.wait_applied(sha, ["default.web", "default.flaky-1"])
        wait_settled(self.envoys.values())

    def call_failing(self, failures: int, status: int = 503) -> tuple[int, int]:
        """GET a fresh path that fails `failures` times through web; (status seen, attempts the
        upstream saw)."""
        self.keys["key"] += 1
        path = f"/fail/{failures}/{status}/k{self.keys['key']}"
        seen, _ = http_get(f"http://127.0.0.1:{self.ports['to_flaky']}{path}", timeout=20)
        return seen, self.flaky.seen[path]

    def tcp_echo_results(self, count: int) -> list[bool]:
        """Open `count` connections to db through web; True for each that echoed."""
        out = []
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", self.ports["to_db"]), timeout=5) as conn:
                try:
                    conn.sendall(b"ping")
                    out.append(conn.recv(16) == b"ping")
                except OSError:
                    out.append(False)
        return out

    def web_tcp_proxy(self) -> dict[str, Any]:
        name = f"outbound:127.0.0.1:{self.ports['to_db']}"
        listener = outbound_listeners(self.envoys["web"].config_dump()).get(name)
        if listener is None:
            raise AssertionError(f"no listener {name} in web's config dump")
        return listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]

    def web_retry_policy(self) -> dict[str, Any] | None:
        config = route_configs(self.envoys["web"].config_dump()).get("outbound:flaky")
        if config is None:
            raise AssertionError("no route configuration outbound:flaky in web's config dump")
        return config["virtual_hosts"][0]["routes"][0]["route"].get("retry_policy")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("meshretry")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "flaky_in", "flaky_app", "to_flaky", "to_db", "db_refused")}
    flaky, echo = FailFirst(), EchoServer()
    with Workload("flaky", port=ports["flaky_app"], behaviour=flaky):
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), flaky, echo, ports)
        first = remote.push(m.files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", "flaky-1"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, ["default.web", "default.flaky-1"])
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()
            echo.close()


def test_kuma_default_retries_turn_three_503s_into_a_success(mesh: Mesh) -> None:
    mesh.apply()
    policy = mesh.web_retry_policy()
    assert policy is not None and policy["num_retries"] == 5 and policy["per_try_timeout"] == "16s"
    # The upstream fails 3 times; Kuma's default (5 retries on gateway errors) hides that.
    assert mesh.call_failing(3) == (200, 4)


def test_fewer_retries_than_failures_let_the_failure_through_and_more_hide_it(mesh: Mesh) -> None:
    mesh.apply({"web-to-flaky": web_retries("flaky", "        http:\n          numRetries: 2\n")})
    assert mesh.call_failing(3) == (503, 3)  # 1 try + 2 retries, all failed

    mesh.apply({"web-to-flaky": web_retries("flaky", "        http:\n          numRetries: 4\n")})
    assert mesh.call_failing(3) == (200, 4)


def test_num_retries_zero_turns_retries_off(mesh: Mesh) -> None:
    mesh.apply({"web-to-flaky": web_retries("flaky", "        http:\n          numRetries: 0\n")})
    assert mesh.web_retry_policy() is None
    assert mesh.call_failing(1) == (503, 1)


def test_retry_on_decides_which_responses_are_retried(mesh: Mesh) -> None:
    # 429 is not among Kuma's default conditions (gateway-error, connect-failure, refused-stream).
    mesh.apply()
    assert mesh.call_failing(1, status=429) == (429, 1)
    # Listing the status code adds it (retriable-status-codes) and keeps the defaults.
    mesh.apply({"web-to-flaky": web_retries("flaky", '        http:\n          retryOn: ["429"]\n')})
    assert mesh.call_failing(2, status=429) == (200, 3)
    assert mesh.call_failing(2, status=503) == (200, 3)
    # Only connection failures: a 503 response is final.
    mesh.apply({"web-to-flaky": web_retries("flaky", "        http:\n          retryOn: [ConnectFailure]\n")})
    assert mesh.call_failing(1, status=503) == (503, 1)


def test_tcp_connect_attempts_move_past_a_refusing_endpoint(mesh: Mesh) -> None:
    # db has two endpoints: an echo server and a port that refuses connections. Each Envoy
    # worker takes them in turn (round robin), so among 40 connections some worker picks the
    # refusing one first, whatever the number of workers (up to 39).
    mesh.apply({"web-to-db": web_retries("db", "        tcp:\n          maxConnectAttempt: 1\n")})
    assert mesh.web_tcp_proxy()["max_connect_attempts"] == 1
    single = mesh.tcp_echo_results(40)
    assert single.count(False) >= 1, "with one attempt, a connection sent to the refusing endpoint fails"

    mesh.apply()  # Kuma's default: 5 attempts, the second goes to the other endpoint
    assert mesh.web_tcp_proxy()["max_connect_attempts"] == 5
    assert mesh.tcp_echo_results(40) == [True] * 40
