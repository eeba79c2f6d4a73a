"""MeshExternalService in real Envoy: a sidecar reaches HTTP servers outside the mesh through
outbounds written with `backendRef: {kind: MeshExternalService}`.

One control plane and one sidecar (`web`, in a mesh with mTLS on) are shared by the module.
Outside the mesh, on 127.0.0.1: a plain HTTP server and an HTTPS server whose certificate
(SANs `localhost`, `ext.example.test`, IP 127.0.0.1) is signed by a CA the test makes with
`cryptography`; a second, unrelated CA is the "wrong" one. The mesh holds both CAs as Secrets.
Every external service is declared in the first push, so the tests only send traffic; the one
test that changes a Secret puts it back.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until

pytestmark = pytest.mark.envoy

MESH = """\
type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
skipCreatingInitialPolicies: ["*"]
"""


# -- certificates ------------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.DNSName("localhost"), x509.DNSName("ext.example.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ext.example.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _close_after_answer(handler: Any) -> bool:
    """Answer and close the connection, so every request makes a new TLS handshake."""
    body = b"secure\n"
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.close_connection = True
    return True


# -- configuration ---------------------------------------------------------------------------
def secret(name: str, data: bytes) -> str:
    return f"type: Secret\nname: {name}\nmesh: default\ndata: {base64.b64encode(data).decode()}\n"


def external(name: str, address: str, port: int, protocol: str = "http", tls: str = "") -> str:
    text = f"""\
type: MeshExternalService
name: {name}
mesh: default
spec:
  match:
    type: HostnameGenerator
    port: 80
    protocol: {protocol}
  endpoints:
    - address: {address}
      port: {port}
"""
    return text + (f"  tls:\n    enabled: true\n{tls}" if tls else "")


def verification(mode: str, ca_secret: str | None = None, server_name: str | None = None) -> str:
    text = f"    verification:\n      mode: {mode}\n"
    if server_name:
        text += f"      serverName: {server_name}\n      subjectAltNames:\n        - type: Exact\n          value: {server_name}\n"
    if ca_secret:
        text += f"      caCert:\n        secret: {ca_secret}\n"
    return text


@dataclass
class Setup:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: EnvoyProcess
    plain: Workload
    secure: Workload
    sni: list[str]
    ca_pem: bytes
    wrong_ca_pem: bytes
    ports: dict[str, int] = field(default_factory=dict)

    def files(self, ext_ca: bytes | None = None) -> dict[str, str | None]:
        p = self.ports
        outbounds = "".join(
            f"    - port: {p[name]}\n      backendRef:\n        kind: MeshExternalService\n        name: {name}\n" for name in EXTERNALS
        )
        dataplane = f"""\
type: Dataplane
mesh: default
name: web
networking:
  address: 127.0.0.1
  inbound:
    - port: {p["web_in"]}
      servicePort: {p["web_app"]}
      tags:
        kuma.io/service: web
        kuma.io/protocol: http
  outbound:
{outbounds}"""
        secure = self.secure.port
        services = [
            external("plain", "127.0.0.1", self.plain.port),
            external("by-hostname", "localhost", self.plain.port),
            external("raw-tcp", "127.0.0.1", self.plain.port, protocol="tcp"),
            external("secured", "127.0.0.1", secure, tls=verification("Secured", "ext-ca", "ext.example.test")),
            external("secured-hostname", "localhost", secure, tls=verification("Secured", "ext-ca")),
            external("wrong-ca", "127.0.0.1", secure, tls=verification("Secured", "wrong-ca")),
            external("skip-ca", "127.0.0.1", secure, tls=verification("SkipCA", "wrong-ca")),
            external("wrong-name", "127.0.0.1", secure, tls=verification("Secured", "ext-ca", "other.example.test")),
            external("skip-san", "127.0.0.1", secure, tls=verification("SkipSAN", "ext-ca", "other.example.test")),
        ]
        return {
            "mesh.yaml": MESH,
            "web.yaml": dataplane,
            "secrets.yaml": secret("ext-ca", ext_ca or self.ca_pem) + "---\n" + secret("wrong-ca", self.wrong_ca_pem),
            "externals.yaml": "---\n".join(services),
        }

    def get(self, name: str, path: str = "/") -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports[name]}{path}")


EXTERNALS = ("plain", "by-hostname", "raw-tcp", "secured", "secured-hostname", "wrong-ca", "skip-ca", "wrong-name", "skip-san")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("mes")
    ca_key, ca = make_ca("external test CA")
    _, wrong_ca = make_ca("unrelated CA")
    cert_pem, key_pem = make_server_cert(ca_key, ca)
    (root / "server.pem").write_bytes(cert_pem)
    (root / "server.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "server.pem", root / "server.key")
    sni: list[str] = []

    def record_sni(sock: Any, name: str | None, ctx: Any) -> None:
        sni.append(name or "")

    context.sni_callback = record_sni
    ports = {k: free_port() for k in ("web_in", "web_app", *EXTERNALS)}
    remote = ConfigRemote(root)
    with Workload("web-app", ports["web_app"]), Workload("plain") as plain, Workload("secure", behaviour=_close_after_answer) as secure:
        secure.server.socket = context.wrap_socket(secure.server.socket, server_side=True)
        cp = ControlPlaneProcess(remote.bare, root / "state")
        s = Setup(remote, cp, EnvoyProcess(cp, root / "envoys", name="web"), plain, secure, sni, pem(ca), pem(wrong_ca), ports)
        first = remote.push(s.files(), "external services")
        cp.start()
        try:
            s.web.start()
            cp.wait_applied(first, ["default.web"], timeout=30)
            yield s
        finally:
            s.web.stop()
            cp.stop()


def _clusters(envoy: EnvoyProcess) -> dict[str, dict[str, Any]]:
    dump = envoy.config_dump()
    out = {}
    for section in dump["configs"]:
        for c in section.get("dynamic_active_clusters") or ():
            out[c["cluster"]["name"]] = c["cluster"]
    return out


def test_plain_http_external_service_is_reached_through_the_outbound(setup: Setup) -> None:
    before = setup.plain.requests["/plain"]
    assert wait_until(lambda: setup.get("plain", "/plain") == (200, "plain\n"), 10, what="plain external service")
    assert setup.plain.requests["/plain"] > before
    # Envoy, not the test, made the request: it added its request id.
    assert "x-request-id" in {k.lower() for k in setup.plain.headers[-1]}


def test_hostname_endpoint_is_resolved_by_envoy_through_strict_dns(setup: Setup) -> None:
    assert wait_until(lambda: setup.get("by-hostname", "/dns") == (200, "plain\n"), 10, what="external service by hostname")
    cluster = _clusters(setup.web)["default_by-hostname___extsvc_80"]
    assert cluster["type"] == "STRICT_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address["address"] == "localhost"


def test_tcp_external_service_carries_bytes_through_a_tcp_proxy(setup: Setup) -> None:
    assert wait_until(lambda: setup.get("raw-tcp", "/tcp") == (200, "plain\n"), 10, what="tcp external service")
    # No HTTP connection manager on the way: Envoy added no request id.
    assert "x-request-id" not in {k.lower() for k in setup.plain.headers[-1]}


def test_https_external_service_is_verified_with_the_ca_from_a_mesh_secret(setup: Setup) -> None:
    before = setup.secure.requests["/secured"]
    assert wait_until(lambda: setup.get("secured", "/secured") == (200, "secure\n"), 10, what="TLS external service")
    assert setup.secure.requests["/secured"] > before
    assert "ext.example.test" in setup.sni  # the serverName is the SNI


def test_hostname_endpoint_is_the_sni_and_the_name_checked(setup: Setup) -> None:
    assert wait_until(lambda: setup.get("secured-hostname", "/host") == (200, "secure\n"), 10, what="TLS external service by hostname")
    assert "localhost" in setup.sni


def test_a_server_the_ca_did_not_sign_fails_the_request(setup: Setup) -> None:
    before = setup.secure.requests["/wrong"]
    status, _ = setup.get("wrong-ca", "/wrong")
    assert status == 503
    assert setup.secure.requests["/wrong"] == before
    stats = setup.web.stats("cluster.default_wrong-ca___extsvc_80.ssl.fail_verify_error")
    assert stats.get("cluster.default_wrong-ca___extsvc_80.ssl.fail_verify_error", 0) >= 1


def test_skip_ca_accepts_a_server_the_ca_did_not_sign(setup: Setup) -> None:
    assert wait_until(lambda: setup.get("skip-ca", "/skip") == (200, "secure\n"), 10, what="SkipCA external service")


def test_a_certificate_without_the_expected_name_fails_the_request(setup: Setup) -> None:
    before = setup.secure.requests["/name"]
    assert setup.get("wrong-name", "/name")[0] == 503
    assert setup.secure.requests["/name"] == before


def test_skip_san_checks_the_ca_but_not_the_name(setup: Setup) -> None:
    assert wait_until(lambda: setup.get("skip-san", "/skip-san") == (200, "secure\n"), 10, what="SkipSAN external service")


def test_pushing_the_right_ca_into_the_secret_fixes_verification(setup: Setup) -> None:
    # The Secret ext-ca now holds the unrelated CA: `secured` must fail, then work again.
    sha = setup.remote.push(setup.files(ext_ca=setup.wrong_ca_pem), "ext-ca now holds the wrong CA")
    try:
        setup.cp.wait_applied(sha, ["default.web"])
        assert wait_until(lambda: setup.get("secured", "/swap")[0] == 503, 10, what="secured fails with the wrong CA")
    finally:
        sha = setup.remote.push(setup.files(), "ext-ca holds the right CA again")
        setup.cp.wait_applied(sha, ["default.web"])
    assert wait_until(lambda: setup.get("secured", "/swap") == (200, "secure\n"), 10, what="secured works again")
