"""The builtin gateway in real Envoy: traffic from outside the mesh, through the gateway's Envoy
and a service's sidecar, with mesh mTLS between them.

One control plane, the gateway proxy (`reconciler run-dataplane` of a BUILTIN gateway
Dataplane) and three sidecars (shop, blog: HTTP; echo: TCP) are shared by the module. The
MeshGateway has an HTTP, an HTTPS (certificate from a mesh Secret) and a TCP listener; two
MeshHTTPRoutes pick the service by hostname and a MeshTCPRoute forwards the TCP listener.
"""

from __future__ import annotations

import base64
import datetime
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until

pytestmark = pytest.mark.envoy

PROXIES = ("default.edge-1", "default.shop-1", "default.blog-1", "default.echo-1")
MESH = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      mode: STRICT
"""


def sidecar(name: str, service: str, inbound_port: int, service_port: int, protocol: str) -> str:
    return f"""\
type: Dataplane
mesh: default
name: {name}
networking:
  address: 127.0.0.1
  inbound:
    - port: {inbound_port}
      servicePort: {service_port}
      tags:
        kuma.io/service: {service}
        kuma.io/protocol: {protocol}
"""


GATEWAY_DATAPLANE = """\
type: Dataplane
mesh: default
name: edge-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge
"""


def mesh_gateway(http: int, https: int, tcp: int) -> str:
    return f"""\
type: MeshGateway
mesh: default
name: edge
selectors:
  - match:
      kuma.io/service: edge
conf:
  listeners:
    - port: {http}
      protocol: HTTP
    - port: {https}
      protocol: HTTPS
      hostname: "*.example.test"
      tls:
        mode: TERMINATE
        certificates:
          - secret: edge-tls
    - port: {tcp}
      protocol: TCP
"""


def http_route(service: str, hostname: str) -> str:
    return f"""\
type: MeshHTTPRoute
name: {service}
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
  to:
    - targetRef:
        kind: Mesh
      hostnames: [{hostname}]
      rules:
        - matches:
            - path: {{type: PathPrefix, value: /}}
          default:
            backendRefs:
              - kind: MeshService
                name: {service}
"""


TCP_ROUTE = """\
type: MeshTCPRoute
name: echo
mesh: default
spec:
  targetRef:
    kind: MeshGateway
    name: edge
  to:
    - targetRef:
        kind: Mesh
      rules:
        - default:
            backendRefs:
              - kind: MeshService
                name: echo
"""


def permission(spiffe_id: str) -> str:
    return f"""\
type: MeshTrafficPermission
name: from-the-gateway
mesh: default
spec:
  targetRef:
    kind: Mesh
  rules:
    - default:
        allow:
          - spiffeID:
              type: Exact
              value: {spiffe_id}
"""


@dataclass(frozen=True)
class GatewayCa:
    ca_file: Path
    secret_data: str
    """The gateway's key and certificate for *.example.test, as a Secret's base64 `data`."""


def make_certificates(directory: Path) -> GatewayCa:
    """A test CA and a leaf for *.example.test it signs (what an operator would put in a Secret)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mesh-reconciler tests"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "*.example.test"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    bundle = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + leaf.public_bytes(serialization.Encoding.PEM)
    return GatewayCa(ca_file, base64.b64encode(bundle).decode())


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(b"echo:" + data)


@dataclass
class Gateway:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    certs: GatewayCa
    shop: Workload
    blog: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, allowed: str = "spiffe://default/edge") -> dict[str, str | None]:
        p = self.ports
        return {
            "mesh.yaml": MESH,
            "dataplanes/edge.yaml": GATEWAY_DATAPLANE,
            "dataplanes/shop.yaml": sidecar("shop-1", "shop", p["shop_in"], self.shop.port, "http"),
            "dataplanes/blog.yaml": sidecar("blog-1", "blog", p["blog_in"], self.blog.port, "http"),
            "dataplanes/echo.yaml": sidecar("echo-1", "echo", p["echo_in"], p["echo_app"], "tcp"),
            "gateway.yaml": mesh_gateway(p["http"], p["https"], p["tcp"]),
            "secret.yaml": f"type: Secret\nmesh: default\nname: edge-tls\ndata: {self.certs.secret_data}\n",
            "routes/shop.yaml": http_route("shop", "shop.example.test"),
            "routes/blog.yaml": http_route("blog", "blog.example.test"),
            "routes/echo.yaml": TCP_ROUTE,
            "permissions.yaml": permission(allowed),
        }

    def apply(self, files: dict[str, str | None], message: str) -> None:
        """Push and wait until every Envoy serves it and no connection is left on an old filter
        chain (the gateway's pooled connections to a sidecar keep the chain they began on)."""
        sha = self.remote.push(files, message)
        self.cp.wait_applied(sha, PROXIES)
        wait_until(
            lambda: all(e.listeners_settled() for e in self.envoys.values()), 10, what="listeners warmed and old filter chains drained"
        )

    def via_gateway(self, host: str, path: str = "/") -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports['http']}{path}", headers={"Host": host, "Connection": "close"})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("http", "https", "tcp", "shop_in", "blog_in", "echo_in", "echo_app")}
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", ports["echo_app"]), _Echo)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        with Workload("shop") as shop, Workload("blog") as blog:
            g = Gateway(remote, ControlPlaneProcess(remote.bare, root / "state"), make_certificates(root), shop, blog, ports)
            first = remote.push(g.files(), "gateway, services, routes")
            g.cp.start()
            try:
                for name in ("edge-1", "shop-1", "blog-1", "echo-1"):
                    g.envoys[name] = EnvoyProcess(g.cp, root / "envoys", name=name)
                    g.envoys[name].start(wait=False)
                for envoy in g.envoys.values():
                    wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
                g.cp.wait_applied(first, PROXIES)
                wait_until(lambda: g.via_gateway("shop.example.test")[0] == 200, 10, what="the gateway routing to shop")
                yield g
            finally:
                for envoy in g.envoys.values():
                    envoy.stop()
                g.cp.stop()
    finally:
        echo.shutdown()
        echo.server_close()


def test_host_header_picks_the_service_behind_the_gateway(gateway: Gateway) -> None:
    shop, blog = gateway.shop.total, gateway.blog.total
    assert gateway.via_gateway("shop.example.test", "/cart") == (200, "shop\n")
    assert gateway.via_gateway("blog.example.test:80", "/posts") == (200, "blog\n")  # the port is ignored
    assert (gateway.shop.total, gateway.blog.total) == (shop + 1, blog + 1)
    assert gateway.shop.requests["/cart"] >= 1 and gateway.blog.requests["/posts"] >= 1
    # No virtual host for other names: Envoy answers 404 itself.
    assert gateway.via_gateway("elsewhere.test")[0] == 404
    assert (gateway.shop.total, gateway.blog.total) == (shop + 1, blog + 1)


def test_gateway_reaches_services_over_mesh_mtls_with_its_own_identity(gateway: Gateway) -> None:
    assert gateway.via_gateway("shop.example.test") == (200, "shop\n")
    # The gateway's cluster to shop speaks TLS to shop's sidecar (STRICT mTLS on its inbound).
    stats = gateway.envoys["edge-1"].stats("cluster.shop.ssl.handshake")
    assert stats.get("cluster.shop.ssl.handshake", 0) >= 1
    inbound = f"listener.127.0.0.1_{gateway.ports['shop_in']}.ssl.handshake"
    assert gateway.envoys["shop-1"].stats(inbound).get(inbound, 0) >= 1


def test_backend_refuses_the_gateway_unless_a_traffic_permission_allows_its_service(gateway: Gateway) -> None:
    gateway.apply(gateway.files(allowed="spiffe://default/someone-else"), "permit someone else")
    try:
        assert wait_until(lambda: gateway.via_gateway("shop.example.test")[0] == 403, 10, what="shop's sidecar refusing the gateway")
    finally:
        gateway.apply(gateway.files(), "permit the gateway")
    assert wait_until(lambda: gateway.via_gateway("shop.example.test") == (200, "shop\n"), 10, what="the gateway allowed again")


def _https(gateway: Gateway, server_name: str, host: str) -> tuple[Any, bytes]:
    context = ssl.create_default_context(cafile=str(gateway.certs.ca_file))
    with (
        socket.create_connection(("127.0.0.1", gateway.ports["https"]), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        cert = tls.getpeercert()
        tls.sendall(f"GET /secure HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    return cert, response


def test_https_listener_presents_the_certificate_from_the_secret(gateway: Gateway) -> None:
    cert, response = _https(gateway, "shop.example.test", "shop.example.test")
    subject = dict(item for rdn in cert["subject"] for item in rdn)
    assert subject["commonName"] == "*.example.test"
    assert subject["organizationName"] == "mesh-reconciler tests"
    assert ("DNS", "*.example.test") in cert["subjectAltName"]
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body.endswith(b"shop\n")
    assert b"strict-transport-security: max-age=31536000" in head.lower()
    assert gateway.shop.requests["/secure"] >= 1
    # The certificate goes to the gateway proxy only.
    assert "cert.ecdsa:secret:edge-tls" in _secret_names(gateway.envoys["edge-1"])
    assert not any(n.startswith("cert.") for n in _secret_names(gateway.envoys["shop-1"]))


def _secret_names(envoy: EnvoyProcess) -> set[str]:
    dump = envoy.config_dump()
    names = set()
    for config in dump["configs"]:
        if config.get("@type", "").endswith("SecretsConfigDump"):
            for secret in config.get("dynamic_active_secrets", []):
                names.add(secret["name"])
    return names


def test_tcp_listener_forwards_a_raw_connection_to_the_meshtcproute_backend(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.ports["tcp"]), timeout=5) as conn:
        conn.sendall(b"hello through the gateway")
        received = b""
        while len(received) < len(b"echo:hello through the gateway"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
    assert received == b"echo:hello through the gateway"
    stats = gateway.envoys["edge-1"].stats("cluster.echo.ssl.handshake")
    assert stats.get("cluster.echo.ssl.handshake", 0) >= 1
