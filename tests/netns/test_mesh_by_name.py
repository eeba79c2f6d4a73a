"""Kuma's networking on Universal, end to end: applications call mesh services by name with no
port configuration, a passthrough-off mesh refuses addresses outside the mesh, and
MeshPassthrough lets out only what it lists.

Every part is the real one, each workload in a network namespace of its own (tests/netns/harness.py):
- `cp`: `reconciler serve` on the namespace's address, watching a bare repository the test pushes to;
- `web` and `backend`: an application and `reconciler run-dataplane --transparent-proxy
  --redirect-dns` (real iptables, Envoy and the DNS proxy as uid 5678);
- `outside`: a nameserver answering every other name, and HTTP servers outside the mesh.

The web application knows nothing of the mesh: it resolves `backend.mesh` (Kuma's name for a
kuma.io/service), `backend.svc.mesh.local` (Kuma's default HostnameGenerator for a MeshService)
or `backend` (a HostnameGenerator of the commit) through /etc/resolv.conf, and connects to port
80. The redirect sends the query to the DNS proxy, which answers the VIP the control plane
allocated, and the connection to Envoy, which routes it with the mesh's policies (mTLS, a
MeshHTTPRoute adding a header) to the backend's sidecar.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, http_get, wait_until
from tests.netns.harness import Namespace, Network, skip_reason
from tests.netns.test_redirect import RECONCILER
from tests.support import ALLOW_ALL, mesh_passthrough
from tests.support import mesh as mesh_yaml

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

XDS_PORT, API_PORT = 15678, 15681
"""Inside the control plane's own namespace: nothing else listens there."""
APP_PORT = 8080
OUTSIDE_PORTS = (8080, 8081)

MESH = mesh_yaml(mtls=True) + "networking:\n  outbound:\n    passthrough: false\n"
ROUTE = """\
type: MeshHTTPRoute
mesh: default
name: tag-requests
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path:
                type: PathPrefix
                value: /
          default:
            filters:
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  add:
                    - name: x-mesh-route
                      value: tag-requests
"""
MESH_SERVICE = """\
type: MeshService
mesh: default
name: backend
spec:
  selector:
    dataplaneTags:
      kuma.io/service: backend
  ports:
    - port: 80
      targetPort: 8080
      appProtocol: http
"""
SHORT_NAMES = """\
type: HostnameGenerator
name: short-names
spec:
  selector:
    meshService:
      matchLabels:
        kuma.io/origin: zone
  template: "{{ .DisplayName }}"
"""

# The backend application: answers with the headers it got, as JSON.
ECHO = textwrap.dedent(
    """
    import http.server, json, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"app": "backend", "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
    """
)
# Servers outside the mesh: answer with their own port.
OUTSIDE = textwrap.dedent(
    """
    import http.server, sys, threading
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"outside {self.server.server_port}".encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    servers = [http.server.ThreadingHTTPServer(("0.0.0.0", int(p)), H) for p in sys.argv[1:]]
    for s in servers[1:]: threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    """
)
# What the web application runs: a plain HTTP GET, resolving the name with the system resolver.
GET = textwrap.dedent(
    """
    import sys, urllib.error, urllib.request
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
            print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode())
    except Exception as e:
        print("error", type(e).__name__, e)
    """
)
# A nameserver for every other name (the outside world's DNS): answers with one address.
NAMESERVER = str(Path(__file__).with_name("probes.py"))


PROBE = """\
      serviceProbe:
        interval: 1s
        timeout: 1s
        healthyThreshold: 1
        unhealthyThreshold: 1
        tcp: {}
"""


def _dataplane(name: str, address: str, probe: str = "") -> str:
    return f"""\
type: Dataplane
mesh: default
name: {name}
networking:
  address: {address}
  inbound:
    - port: {APP_PORT}
      tags:
        kuma.io/service: {name}
        kuma.io/protocol: http
{probe}  transparentProxying:
    redirectPortInbound: 15006
    redirectPortOutbound: 15001
"""


@dataclass
class Mesh:
    net: Network
    cp: Namespace
    web: Namespace
    backend: Namespace
    outside: Namespace
    remote: ConfigRemote
    logs: Path
    backend_app: subprocess.Popen[Any]

    def api(self, path: str) -> Any:
        with self.cp.entered():
            return json.loads(http_get(f"http://{self.cp.address}:{API_PORT}{path}")[1])

    def push(self, files: dict[str, str | None], message: str) -> None:
        sha = self.remote.push(files, message)

        def applied() -> bool:
            return str(self.api("/status").get("lastAppliedRevision", "")).rpartition(":")[2] == sha

        wait_until(applied, 30, what=f"commit {sha[:8]} applied\n{self.log_tail()}")

    def get(self, url: str) -> str:
        """What the web application gets for `url`: `<status> <body>`, or `error <why>` without an answer."""
        return self.web.run([sys.executable, "-c", GET, url], check=False, timeout=20).stdout.strip()

    def eventually(self, url: str, expected: str, timeout: float = 30.0) -> str:
        seen: list[str] = []

        def check() -> str | None:
            answer = self.get(url)
            seen.append(answer)
            return answer if expected in answer else None

        return str(wait_until(check, timeout, interval=0.5, what=f"{url} answering {expected!r}; last: {seen[-1:]}\n{self.log_tail()}"))

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.logs.glob("*.log")))


def _sidecar(ns: Namespace, cp: Namespace, name: str, logs: Path) -> subprocess.Popen[Any]:
    log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 (the child writes to it until the network closes)
    return ns.popen(
        [
            *RECONCILER,
            "run-dataplane",
            "--mesh",
            "default",
            "--name",
            name,
            "--cp-address",
            f"{cp.address}:{XDS_PORT}",
            "--api-address",
            f"http://{cp.address}:{API_PORT}",
            "--xds-tls",
            "none",
            "--admin-port",
            "9901",
            "--drain-time",
            "1s",
            "--transparent-proxy",
            "--redirect-dns",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh-by-name")
    logs = root / "logs"
    logs.mkdir()
    remote = ConfigRemote(root)
    with Network() as net:
        cp = net.add("cp")
        outside = net.add("outside")
        backend = net.add("backend", resolv_conf=f"nameserver {outside.address}\n")
        web = net.add("web", resolv_conf=f"nameserver {outside.address}\n")
        remote.push(
            {
                "mesh.yaml": MESH,
                "allow.yaml": ALLOW_ALL,
                "route.yaml": ROUTE,
                "meshservice.yaml": MESH_SERVICE,
                "short-names.yaml": SHORT_NAMES,
                "web.yaml": _dataplane("web", web.address),
                "backend.yaml": _dataplane("backend", backend.address, PROBE),
            },
            "a mesh of two transparent proxies",
        )
        state = root / "state"
        cp_log = open(logs / "control-plane.log", "ab")  # noqa: SIM115
        serve = [*RECONCILER, "-v", "serve", "--repo", str(remote.bare), "--state-dir", str(state), "--address", cp.address]
        serve += ["--api-address", cp.address, "--xds-port", str(XDS_PORT), "--api-port", str(API_PORT), "--poll-interval", "0.5"]
        serve += ["--xds-tls", "none", "--dataplane-auth", "none", "--hds-interval", "1"]
        cp.popen(serve, stdout=cp_log, stderr=subprocess.STDOUT)
        outside.popen([sys.executable, NAMESERVER, "dns", "53", outside.address], stdout=subprocess.DEVNULL)
        outside.popen([sys.executable, "-c", OUTSIDE, *map(str, OUTSIDE_PORTS)])
        app = backend.popen([sys.executable, "-c", ECHO, str(APP_PORT)])
        result = Mesh(net, cp, web, backend, outside, remote, logs, app)

        def serving() -> bool:
            try:
                return bool(result.api("/status").get("lastAppliedRevision"))
            except OSError:
                return False

        wait_until(serving, 30, interval=0.3, what=f"the control plane serving\n{result.log_tail()}")
        _sidecar(backend, cp, "backend", logs)
        _sidecar(web, cp, "web", logs)
        yield result


def _answer(text: str) -> dict[str, Any]:
    status, _, body = text.partition(" ")
    assert status == "200", text
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.mark.parametrize("url", ["http://backend.mesh/", "http://backend.svc.mesh.local/", "http://backend:80/"])
def test_an_application_calls_a_mesh_service_by_name_through_its_sidecar_with_the_policies_applied(mesh: Mesh, url: str) -> None:
    answer = _answer(mesh.eventually(url, '"app": "backend"', timeout=45))
    # The MeshHTTPRoute of the commit added its header on the way: the request went through
    # the web sidecar's route, not straight to the backend.
    assert answer["headers"].get("x-mesh-route") == "tag-requests", answer
    # And it reached the backend through its sidecar over mTLS: the sidecar adds Kuma's
    # forwarded client certificate header from the verified peer.
    assert "spiffe://default/web" in answer["headers"].get("x-forwarded-client-cert", ""), answer


def test_the_names_resolve_to_the_vips_the_control_plane_allocated(mesh: Mesh) -> None:
    items = mesh.api("/meshes/default/meshservices/backend")
    vip = items["status"]["vips"][0]["ip"]
    assert vip.startswith("241."), items
    resolve = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    assert mesh.web.run([sys.executable, "-c", resolve, "backend.svc.mesh.local"]).stdout.strip() == vip
    assert mesh.web.run([sys.executable, "-c", resolve, "backend.mesh"]).stdout.strip().startswith("240.")
    # Names outside the mesh still go to the namespace's own nameserver.
    assert mesh.web.run([sys.executable, "-c", resolve, "example.org"]).stdout.strip() == mesh.outside.address


def test_a_caller_outside_the_mesh_cannot_reach_the_backend_past_its_sidecar(mesh: Mesh) -> None:
    mesh.eventually("http://backend.mesh/", '"app": "backend"', timeout=45)
    # The backend's inbound traffic is redirected to its sidecar, which wants mTLS: a plain
    # client (the outside namespace has no sidecar) gets no answer from the application.
    plain = mesh.outside.run([sys.executable, "-c", GET, f"http://{mesh.backend.address}:{APP_PORT}/"], check=False).stdout
    assert plain.startswith("error"), plain


def test_passthrough_off_refuses_outside_addresses_until_a_meshpassthrough_lists_them(mesh: Mesh) -> None:
    listed, unlisted = (f"http://{mesh.outside.address}:{port}/" for port in OUTSIDE_PORTS)
    mesh.eventually("http://backend.mesh/", '"app": "backend"', timeout=45)
    assert mesh.get(listed).startswith("error"), "the mesh's passthrough is off: nothing outside it is reachable"
    assert mesh.get("http://outside.example:8080/").startswith("error")
    policy = mesh_passthrough("let-out", "Matched", ("IP", mesh.outside.address, OUTSIDE_PORTS[0], "tcp"))
    mesh.push({"passthrough.yaml": policy}, "let the web reach one outside port")
    try:
        assert mesh.eventually(listed, f"outside {OUTSIDE_PORTS[0]}") == f"200 outside {OUTSIDE_PORTS[0]}"
        # By name too: the outside nameserver resolves it to the listed address.
        assert mesh.get(f"http://outside.example:{OUTSIDE_PORTS[0]}/") == f"200 outside {OUTSIDE_PORTS[0]}"
        # The other port of the same address is not listed.
        assert mesh.get(unlisted).startswith("error")
        # Mesh services are not affected.
        assert '"app": "backend"' in mesh.get("http://backend.mesh/")
    finally:
        mesh.push({"passthrough.yaml": None}, "close it again")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not mesh.get(listed).startswith("error"):
        time.sleep(0.5)
    assert mesh.get(listed).startswith("error")


def _endpoints_of_backend(mesh: Mesh) -> list[str]:
    """The backend's addresses in the web sidecar's clusters (Envoy's admin, inside `web`)."""
    with mesh.web.entered():
        clusters = http_get("http://127.0.0.1:9901/clusters")[1]
    return sorted({line.split("::")[0] for line in clusters.splitlines() if f"::{mesh.backend.address}:{APP_PORT}::" in line})


def test_a_workload_that_stops_answering_leaves_its_consumers_endpoints_and_returns(mesh: Mesh) -> None:
    # Last in the module: it stops the backend's application. The backend's sidecar probes it
    # (serviceProbe, over HDS, from 127.0.0.6 past the redirect), and the control plane takes it
    # out of web's endpoints: web's sidecar has no backend host left, not a failing one.
    mesh.eventually("http://backend.mesh/", '"app": "backend"', timeout=45)
    assert _endpoints_of_backend(mesh) == ["backend", "default_backend___msvc_80"]
    mesh.backend_app.terminate()
    mesh.backend_app.wait(10)
    wait_until(lambda: not _endpoints_of_backend(mesh), 20, interval=0.3, what=f"the backend out of web's endpoints\n{mesh.log_tail()}")
    inbound = mesh.api("/meshes/default/dataplanes/backend")["networking"]["inbound"][0]
    assert inbound["health"] == {"ready": False}, inbound
    assert mesh.get("http://backend.mesh/") == "503 no healthy upstream"
    mesh.backend.popen([sys.executable, "-c", ECHO, str(APP_PORT)])
    mesh.eventually("http://backend.mesh/", '"app": "backend"', timeout=20)
    assert _endpoints_of_backend(mesh) == ["backend", "default_backend___msvc_80"]
