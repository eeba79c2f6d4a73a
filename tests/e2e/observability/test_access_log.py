"""MeshAccessLog with real Envoys and real receivers: files, a TCP socket, an OTLP/gRPC collector.

One control plane and four proxies are shared by the module: web-1 (HTTP, outbounds to backend
and to db), backend-1 (HTTP), db-1 (TCP, an echo server) and edge-1 (a builtin gateway whose
HTTP listener routes to backend). Three MeshAccessLogs are pushed through git:

- `inbound` (sidecars, `rules`): every inbound writes its default line to inbound.log and a
  JSON object to inbound.json;
- `outbound` (sidecars, `to` Mesh): every outbound writes a plain line to outbound.log, a JSON
  object to the test's TCP receiver (through the streamer beside Envoy), and an OTLP log record
  with attributes and a kvlist body to the test's collector;
- `gateway` (the MeshGateway, `to`) and `gateway-in` (gateways, `rules`): the gateway's listener
  writes a plain line for each to edge.log.

The last tests change the configuration through git and push the module's back: one removes a
policy and restores it, one turns mTLS on and adds rules matching clients by SPIFFE ID.

Envoy flushes file loggers every 10 s by default; the tests ask it to flush sooner with the
admin's `POST /reopen_logs`, which is what a user would wait 10 s for.
Each request has its own path, so a test finds its own lines whatever ran before it.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled, wait_until
from tests.e2e.observability.access_log_policies import policies
from tests.e2e.observability.line_receiver import LineReceiver
from tests.e2e.observability.otlp import OtlpReceiver, attributes
from tests.e2e.tcp import EchoServer
from tests.support import dataplane_yaml, gateway_yaml

pytestmark = pytest.mark.envoy

PROXIES = ("web-1", "backend-1", "db-1", "edge-1")


@dataclass
class World:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    logs: Path
    ports: dict[str, int]
    receiver: LineReceiver
    otlp: OtlpReceiver
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)
    base: dict[str, str | None] = field(default_factory=dict)
    """The module's configuration as first pushed; a test that changes it pushes it back."""

    def apply(self, files: Mapping[str, str | None], message: str) -> None:
        """Push, wait until every proxy applied it and no old filter chain still serves."""
        sha = self.remote.push(files, message)
        # Generous: turning mTLS on issues every proxy a certificate, on a machine shared by other tests.
        self.cp.wait_applied(sha, [f"default.{n}" for n in PROXIES], timeout=60)
        # A pooled connection stays on the old filter chain until it drains (1 s here).
        wait_settled(self.envoys.values())

    def flush(self) -> None:
        for envoy in self.envoys.values():
            urllib.request.urlopen(urllib.request.Request(envoy.admin + "/reopen_logs", data=b"", method="POST"), timeout=5).close()

    def lines(self, name: str, containing: str) -> list[str]:
        """The lines of logs/<name> that mention `containing`, after asking every Envoy to flush."""
        self.flush()
        path = self.logs / name
        return [line for line in path.read_text().splitlines() if containing in line] if path.exists() else []


def files(world: World, backend_port: int, db_port: int) -> dict[str, str | None]:
    p = world.ports
    out: dict[str, str | None] = {
        "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
        "dataplanes/web.yaml": dataplane_yaml("web-1", "web", p["web_in"], free_port(), {"backend": p["to_backend"], "db": p["to_db"]}),
        "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], backend_port),
        "dataplanes/db.yaml": dataplane_yaml("db-1", "db", p["db_in"], db_port, protocol="tcp"),
        "gateway.yaml": gateway_yaml(p["gateway"], "backend"),
    }
    out.update(policies(world.logs, world.receiver.port, world.otlp.endpoint))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("access-log")
    logs = root / "logs"
    logs.mkdir()
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "db_in", "to_backend", "to_db", "gateway")}
    receiver = LineReceiver()
    echo = EchoServer()
    with Workload("backend") as backend, OtlpReceiver() as otlp:
        w = World(remote, ControlPlaneProcess(remote.bare, root / "state"), logs, ports, receiver, otlp)
        w.base = files(w, backend.port, echo.port)
        sha = remote.push(w.base, "a mesh with access logs everywhere")
        w.cp.start()
        try:
            for name in PROXIES:
                w.envoys[name] = EnvoyProcess(w.cp, root / "envoys", name=name)
                w.envoys[name].start(wait=False)
            for envoy in w.envoys.values():
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            w.cp.wait_applied(sha, [f"default.{n}" for n in PROXIES])
            wait_until(lambda: http_get(f"http://127.0.0.1:{ports['to_backend']}/warm-up")[0] == 200, 15, what="web reaching backend")
            yield w
        finally:
            for envoy in w.envoys.values():
                envoy.stop()
            w.cp.stop()
            receiver.close()
            echo.close()


def _path() -> str:
    return f"/{uuid.uuid4().hex[:12]}"


def _get(port: int, path: str) -> int:
    return http_get(f"http://127.0.0.1:{port}{path}")[0]


def test_file_backend_writes_one_line_per_http_request_on_outbound_and_inbound(world: World) -> None:
    path = _path()
    for i in range(3):
        assert _get(world.ports["to_backend"], f"{path}?n={i}") == 200
    outbound = wait_until(lambda: (x := world.lines("outbound.log", path)) and len(x) == 3 and x, 25, what="3 outbound lines")
    # web's outbound: Kuma's placeholders resolved for the proxy, Envoy's operators by Envoy.
    assert outbound == [f"OUTBOUND web->backend 127.0.0.1 {path}?n={i} 200 sent=8" for i in range(3)]
    # backend's inbound, in Kuma's default HTTP line and as the configured JSON object.
    inbound = wait_until(lambda: (x := world.lines("inbound.log", path)) and len(x) == 3 and x, 25, what="3 inbound lines")
    # (sidecars speak HTTP/2 to each other, so backend's inbound saw HTTP/2)
    assert all(f'default "GET {path}?n=' in line and ' HTTP/2" 200 ' in line for line in inbound)
    assert all('"unknown" "backend" "127.0.0.1"' in line for line in inbound)
    objects = [json.loads(line) for line in wait_until(lambda: world.lines("inbound.json", path), 25, what="inbound JSON lines")]
    assert [o["path"] for o in objects] == [f"{path}?n={i}" for i in range(3)]
    assert {(o["direction"], o["source"], o["destination"], o["mesh"], o["status"]) for o in objects} == {
        ("INBOUND", "unknown", "backend", "default", 200)
    }


def test_file_backend_logs_tcp_connections_in_both_directions(world: World) -> None:
    payload = f"ping {uuid.uuid4().hex}\n".encode()
    with socket.create_connection(("127.0.0.1", world.ports["to_db"]), timeout=5) as conn:
        conn.sendall(payload)
        assert conn.recv(4096) == payload
    # A TCP proxy logs when the connection closes: web's outbound to db, then db's inbound.
    line = f"OUTBOUND web->db 127.0.0.1 - 0 sent={len(payload)}"
    wait_until(lambda: world.lines("outbound.log", line), 25, what="the outbound TCP line")
    inbound = wait_until(lambda: world.lines("inbound.log", "(unknown)->"), 25, what="db's inbound TCP line (Kuma's default)")
    assert any(
        "default 127.0.0.1(unknown)->127.0.0.1:" in x and "(db) took " in x and f"received: {len(payload)} bytes" in x for x in inbound
    )
    objects = [json.loads(x) for x in world.lines("inbound.json", '"destination":"db"')]
    assert any(o["received"] == len(payload) and o["direction"] == "INBOUND" for o in objects)


def test_tcp_backend_streams_json_lines_to_the_receiver(world: World) -> None:
    path = _path()
    assert _get(world.ports["to_backend"], path) == 200
    world.flush()
    got = wait_until(lambda: [x for x in world.receiver.received() if path in x], 25, what="the line at the TCP receiver")
    assert [json.loads(x) for x in got] == [{"source": "web", "destination": "backend", "path": path}]


def _records(otlp: OtlpReceiver) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(resource attributes, record attributes, body) of every log record received.

    Read by field number's older names too: the xds-protos package ships a pre-1.0 copy of the
    OTLP protos (`instrumentation_library_logs`/`logs`, the same fields 2 and 2 on the wire as
    `scope_logs`/`log_records`) that replaces opentelemetry-proto's modules when installed after
    it, so the names depend on the install order."""
    out = []
    for request in otlp.requests("logs"):
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            scopes = getattr(resource_logs, "scope_logs", None) or getattr(resource_logs, "instrumentation_library_logs", [])
            for scope in scopes:
                for record in getattr(scope, "log_records", None) or getattr(scope, "logs", []):
                    out.append((resource, attributes(record.attributes), attributes(record.body.kvlist_value.values)))
    return out


def test_opentelemetry_backend_exports_records_with_the_configured_attributes(world: World) -> None:
    path = _path()
    assert _get(world.ports["to_backend"], path) == 200
    mine = wait_until(lambda: [r for r in _records(world.otlp) if r[1].get("http.path") == path], 25, what="the OTLP log record")
    assert len(mine) == 1
    resource, attrs, body = mine[0]
    assert resource["kuma.mesh"] == "default"
    assert {k: str(v) for k, v in attrs.items() if k in ("kuma.direction", "http.path", "http.status")} == {
        "kuma.direction": "OUTBOUND",
        "http.path": path,
        "http.status": "200",
    }
    assert body == {"route": "web to backend"}


def test_gateway_listener_logs_its_requests(world: World) -> None:
    path = _path()
    wait_until(lambda: _get(world.ports["gateway"], path) == 200, 15, what="the gateway routing to backend")
    lines = wait_until(lambda: (x := world.lines("edge.log", path)) and len(x) == 2 and x, 25, what="the gateway's two lines")
    # Its `to` logger (outbound to anything), then its inbound rule's (into the gateway).
    assert lines == [f"edge->* OUTBOUND {path} 200", f"unknown->edge INBOUND {path} 200"]
    # The request went on to backend's inbound, which logged it too.
    wait_until(lambda: world.lines("inbound.log", path), 25, what="backend's inbound line for the gateway's request")


def test_a_pushed_policy_change_stops_and_starts_logging_without_restarts(world: World) -> None:
    pids = {name: envoy.proc.pid for name, envoy in world.envoys.items() if envoy.proc is not None}
    world.apply({"policies/inbound.yaml": None}, "no more inbound access logs")
    off = _path()
    assert _get(world.ports["to_backend"], off) == 200
    # The outbound line shows Envoy flushed after the request; the inbound one never comes.
    wait_until(lambda: world.lines("outbound.log", off), 25, what="the outbound line while inbound logging is off")
    assert world.lines("inbound.log", off) == [] and world.lines("inbound.json", off) == []

    world.apply(world.base, "inbound access logs again")
    on = _path()
    assert _get(world.ports["to_backend"], on) == 200
    wait_until(lambda: world.lines("inbound.json", on), 25, what="inbound logging back on")
    assert {name: envoy.proc.pid for name, envoy in world.envoys.items() if envoy.proc is not None} == pids
    assert all(envoy.alive() for envoy in world.envoys.values())


MTLS_MESH = 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - {name: ca-1, type: builtin}\n'
ALLOW_ALL = """\
type: MeshTrafficPermission
mesh: default
name: allow-all
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Allow}
"""


def test_with_mtls_an_inbound_rule_matching_a_client_logs_that_client_only(world: World) -> None:
    def rule(spiffe_id: str, log: str) -> str:
        return f"""\
    - matches: [{{spiffeID: {{type: Exact, value: '{spiffe_id}'}}}}]
      default:
        backends:
          - type: File
            file: {{path: {world.logs / log}, format: {{type: Plain, plain: '%DOWNSTREAM_PEER_URI_SAN% %REQ(:PATH)%'}}}}
"""

    by_client = f"""\
type: MeshAccessLog
mesh: default
name: by-client
spec:
  targetRef: {{kind: MeshService, name: backend}}
  rules:
{rule("spiffe://default/web", "from-web.log")}{rule("spiffe://default/edge", "from-edge.log")}"""
    changes = {"mesh.yaml": MTLS_MESH, "policies/allow-all.yaml": ALLOW_ALL, "policies/by-client.yaml": by_client}
    try:
        world.apply(changes, "mTLS, and backend logging its clients by SPIFFE ID")
        path = _path()
        wait_until(lambda: _get(world.ports["to_backend"], path) == 200, 20, what="web reaching backend over mTLS")
        lines = wait_until(lambda: world.lines("from-web.log", path), 25, what="the line of the rule matching web")
        assert lines[0].startswith("spiffe://default/web")
        # The mesh-wide rule logged it too (rules fan out); the rule for edge did not.
        wait_until(lambda: world.lines("inbound.json", path), 25, what="the catch-all rule's line")
        assert world.lines("from-edge.log", path) == []
        gateway = _path()
        wait_until(lambda: _get(world.ports["gateway"], gateway) == 200, 20, what="the gateway reaching backend over mTLS")
        assert wait_until(lambda: world.lines("from-edge.log", gateway), 25, what="the line of the rule matching edge")
        assert world.lines("from-web.log", gateway) == []
    finally:
        world.apply({**world.base, "policies/allow-all.yaml": None, "policies/by-client.yaml": None}, "back to the module's mesh")
