"""MeshTimeout in real Envoy: the configured timeout, not Envoy's or Kuma's default, is what
ends a slow request or a stuck connection, and `git push` changes it.

One control plane and two sidecars are shared by the module: `web` (the client, with
outbounds to `slow` and `db`) and `slow-1` (in front of an HTTP workload that sleeps or
trickles as the path says). `db` and `stuck` have no sidecar: their Dataplanes point the
client's Envoy straight at a socket the test controls, a TCP echo server and a listener whose
accept queue is full (a connection attempt hangs). Each test pushes the whole configuration
it needs. MeshRetry's default is skipped so that a timed-out request is not retried.

The tests change routes and listeners of the shared sidecars, never their EDS clusters: a
changed EDS cluster makes Envoy ask for its endpoints again, and today's xDS server answers
that only after Envoy's 15s initial fetch timeout. The connect-timeout test, which needs a
cluster of its own, starts its own client.
"""

from __future__ import annotations

import http.server
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
# Only MeshTimeout is under test: Kuma's default retries would repeat timed-out requests.
skipCreatingInitialPolicies: [MeshRetry]
"""
_SLEEP = re.compile(r"^/sleep/([0-9.]+)$")
_TRICKLE = re.compile(r"^/trickle/([0-9]+)$")


def _slow_answers(handler: http.server.BaseHTTPRequestHandler) -> bool:
    """`GET /sleep/1.5` answers after 1.5 seconds; `GET /trickle/6` sends its headers, then one
    byte of body every 0.5 seconds, six in all; anything else is answered at once."""
    sleep, trickle = _SLEEP.match(handler.path), _TRICKLE.match(handler.path)
    if not sleep and not trickle:
        return False
    try:
        if sleep:
            time.sleep(float(sleep.group(1)))
            body = b"slow\n"
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        elif trickle:
            count = int(trickle.group(1))
            handler.send_response(200)
            handler.send_header("Content-Length", str(count))
            handler.end_headers()
            for _ in range(count):
                time.sleep(0.5)
                handler.wfile.write(b".")
                handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the proxy gave up on this request: that is what the tests provoke
    return True


MESH_WIDE = """\
type: MeshTimeout
name: mesh-timeout-all-default
mesh: default
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Sidecar]
  from:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 10s
        idleTimeout: 2h
        http:
          requestTimeout: 0s
          streamIdleTimeout: 1h
          maxStreamDuration: 0s
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 5s
        idleTimeout: 1h
        http:
          requestTimeout: 1s
          streamIdleTimeout: 1s
"""
"""Kuma's default sidecar MeshTimeout as committed to git, with 1s request and stream idle
timeouts on every outbound."""


def web_timeouts(name: str, service: str, conf: str, client: str = "web") -> str:
    """A MeshTimeout for the client's calls to `service`; Dataplane-targeted, so it is more
    specific than (and merges over) the mesh-wide default policy."""
    return f"""\
type: MeshTimeout
name: {name}
mesh: default
spec:
  targetRef:
    kind: Dataplane
    name: {client}
  to:
    - targetRef:
        kind: MeshService
        name: {service}
      default:
{conf}"""


class StuckListener:
    """A TCP listener that never accepts and whose accept queue is full: the kernel drops new
    SYNs, so a connection attempt hangs until the caller's connect timeout."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)

    def close(self) -> None:
        self.filler.close()
        self.server.close()


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    work: Path
    slow: Workload
    stuck: StuckListener
    echo: EchoServer
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, policies: dict[str, str] | None = None) -> dict[str, str | None]:
        p = self.ports
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": dataplane_yaml(
                "web", "web", p["web_in"], p["web_app"], outbounds={"slow": p["to_slow"], "db": p["to_db"]}
            ),
            "dataplanes/slow.yaml": dataplane_yaml("slow-1", "slow", p["slow_in"], self.slow.port),
            # No sidecars: web's Envoy connects straight to the test's sockets.
            "dataplanes/stuck.yaml": dataplane_yaml("stuck-1", "stuck", self.stuck.port, self.stuck.port),
            "dataplanes/db.yaml": dataplane_yaml("db-1", "db", self.echo.port, self.echo.port, protocol="tcp"),
        }
        return out | self.remote.replace_directory("policies", policies)

    def apply(self, policies: dict[str, str] | None = None) -> None:
        sha = self.remote.push(self.files(policies), "timeouts")
        self.cp.wait_applied(sha, ["default.web", "default.slow-1"])
        wait_settled(self.envoys.values())

    def timed_get(self, port_key: str, path: str = "/") -> tuple[int, str, float]:
        start = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{self.ports[port_key]}{path}", timeout=20)
        return status, body, time.monotonic() - start

    def dump(self, proxy: str) -> dict[str, Any]:
        """{"cluster/<name>": cluster, "route/<name>": route configuration} from Envoy's config dump."""
        out: dict[str, Any] = {}
        dump = self.envoys[proxy].config_dump()
        out.update({f"route/{name}": config for name, config in route_configs(dump).items()})
        for config in dump["configs"]:
            for item in config.get("dynamic_active_clusters", []):
                out[f"cluster/{item['cluster']['name']}"] = item["cluster"]
            for item in config.get("dynamic_listeners", []):
                out[f"listener/{item['name']}"] = item["active_state"]["listener"]
        out.update({f"listener/{name}": listener for name, listener in outbound_listeners(dump).items()})
        return out


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("meshtimeout")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "slow_in", "to_slow", "to_db", "caller_to_stuck")}
    stuck, echo = StuckListener(), EchoServer()
    with Workload("slow", behaviour=_slow_answers) as slow:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), root / "envoys", slow, stuck, echo, ports)
        first = remote.push(m.files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", "slow-1"):
                m.envoys[name] = EnvoyProcess(m.cp, m.work, name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, ["default.web", "default.slow-1"])
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()
            stuck.close()
            echo.close()


def _route_action(route_config: dict[str, Any]) -> dict[str, Any]:
    return route_config["virtual_hosts"][0]["routes"][0]["route"]  # type: ignore[no-any-return]


def test_without_a_meshtimeout_in_git_envoy_gets_kumas_default_timeouts(mesh: Mesh) -> None:
    mesh.apply()
    web, slow = mesh.dump("web"), mesh.dump("slow-1")
    # Outbound (mesh-timeout-all-default `to`): request 15s, stream idle 30m, connect 5s, idle 1h.
    assert _route_action(web["route/outbound:slow"])["timeout"] == "15s"
    assert _route_action(web["route/outbound:slow"])["idle_timeout"] == "1800s"
    assert web["cluster/slow"]["connect_timeout"] == "5s"
    # Inbound (its `from`): no request timeout, stream idle 1h, connect 10s, idle 2h.
    inbound_route = _route_action(slow["route/inbound:slow"])
    assert (inbound_route["timeout"], inbound_route["idle_timeout"]) == ("0s", "3600s")
    local = slow[f"cluster/localhost:{mesh.slow.port}"]
    assert local["connect_timeout"] == "10s"
    options = local["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["common_http_protocol_options"]["idle_timeout"] == "7200s"
    # A 2s request is well inside the default 15s.
    assert mesh.timed_get("to_slow", "/sleep/2")[0] == 200


def test_request_slower_than_the_timeout_fails_with_504_and_a_raised_timeout_lets_it_pass(mesh: Mesh) -> None:
    mesh.apply({"web-to-slow": web_timeouts("web-to-slow", "slow", "        http:\n          requestTimeout: 1s\n")})
    status, body, elapsed = mesh.timed_get("to_slow", "/sleep/2")
    assert (status, body) == (504, "upstream request timeout")
    assert 0.9 <= elapsed < 1.8, f"timed out after {elapsed:.2f}s, not the configured 1s"

    mesh.apply({"web-to-slow": web_timeouts("web-to-slow", "slow", "        http:\n          requestTimeout: 3s\n")})
    status, body, elapsed = mesh.timed_get("to_slow", "/sleep/2")
    assert (status, body) == (200, "slow\n")
    assert elapsed >= 2


def test_inbound_rules_timeout_is_enforced_by_the_receiving_sidecar(mesh: Mesh) -> None:
    inbound = """\
type: MeshTimeout
name: slow-inbound
mesh: default
spec:
  targetRef:
    kind: Dataplane
    name: slow-1
  rules:
    - default:
        http:
          requestTimeout: 1s
"""
    mesh.apply({"slow-inbound": inbound})
    status, body, elapsed = mesh.timed_get("to_slow", "/sleep/2")
    # web's outbound allows 15s (Kuma's default); slow-1's inbound gives up after 1s.
    assert (status, body) == (504, "upstream request timeout")
    assert 0.9 <= elapsed < 1.8
    stats = mesh.envoys["slow-1"].stats("http.inbound_127_0_0_1")
    assert any(k.endswith("downstream_rq_5xx") and v >= 1 for k, v in stats.items())


def test_mesh_wide_and_service_specific_timeouts_merge_and_envoy_enforces_the_merged_values(mesh: Mesh) -> None:
    # Mesh-wide: the mesh's own default policy, committed with a 1s request and stream idle
    # timeout (a policy of the same name replaces Kuma's). Service-specific: web gives slow 5s
    # per request. Merged for web -> slow: request 5s (specific), stream idle 1s (mesh-wide).
    specific = web_timeouts("web-to-slow", "slow", "        http:\n          requestTimeout: 5s\n")
    mesh.apply({"mesh-timeout-all-default": MESH_WIDE, "web-to-slow": specific})
    route = _route_action(mesh.dump("web")["route/outbound:slow"])
    assert (route["timeout"], route["idle_timeout"]) == ("5s", "1s")

    # 3s, a byte every 0.5s: longer than the mesh-wide request timeout, never idle for 1s.
    status, body, elapsed = mesh.timed_get("to_slow", "/trickle/6")
    assert (status, body) == (200, "......"), "the service-specific 5s request timeout should apply"
    # Silent for 2s: the mesh-wide 1s stream idle timeout ends it (Kuma's default is 30m).
    status, body, elapsed = mesh.timed_get("to_slow", "/sleep/2")
    assert (status, body) == (504, "stream timeout"), "the mesh-wide stream idle timeout should apply"
    assert 0.9 <= elapsed < 1.8


def test_connection_to_an_unresponsive_endpoint_gives_up_after_the_connection_timeout(mesh: Mesh) -> None:
    # A client of its own, so that web's clusters stay as they are.
    files = mesh.files({"caller-to-stuck": web_timeouts("caller-to-stuck", "stuck", "        connectionTimeout: 1s\n", client="caller")})
    files["dataplanes/caller.yaml"] = dataplane_yaml(
        "caller", "caller", free_port(), free_port(), outbounds={"stuck": mesh.ports["caller_to_stuck"]}
    )
    sha = mesh.remote.push(files, "caller with a 1s connect timeout to stuck")
    caller = EnvoyProcess(mesh.cp, mesh.work, name="caller")
    caller.start()
    try:
        mesh.cp.wait_applied(sha, ["default.caller"])
        start = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{mesh.ports['caller_to_stuck']}/", timeout=20)
        elapsed = time.monotonic() - start
    finally:
        caller.stop()
    # stuck never completes the TCP handshake; Kuma's default would wait 5s.
    assert status == 503 and "connection timeout" in body, (status, body)
    assert 0.9 <= elapsed < 1.8, f"gave up after {elapsed:.2f}s, not the configured 1s"


def test_idle_tcp_connection_is_closed_after_the_configured_idle_timeout(mesh: Mesh) -> None:
    mesh.apply({"web-to-db": web_timeouts("web-to-db", "db", "        idleTimeout: 1s\n")})
    listener = mesh.dump("web")[f"listener/outbound:127.0.0.1:{mesh.ports['to_db']}"]
    assert listener["filter_chains"][0]["filters"][0]["typed_config"]["idle_timeout"] == "1s"
    with socket.create_connection(("127.0.0.1", mesh.ports["to_db"]), timeout=10) as conn:
        conn.sendall(b"ping")
        assert conn.recv(16) == b"ping"
        start = time.monotonic()
        assert conn.recv(16) == b"", "Envoy should close the idle connection"
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5, f"closed after {elapsed:.2f}s, not the configured 1s (Kuma's default is 1h)"
