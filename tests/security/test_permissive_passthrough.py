"""Permissive mTLS with real Envoys: mesh clients, plaintext clients and the application's own TLS.

A Permissive inbound must tell three kinds of caller apart, as Kuma's does: a mesh sidecar
(TLS whose ClientHello offers ALPN `kuma`: mTLS is terminated and RBAC applies), a plain
client (passed to the workload) and a client doing its own TLS with the workload (passed
through untouched, so it meets the workload's certificate, not the mesh's). The last one used
to fail the handshake against the mesh certificate.

Services: `web` is the mesh client; `backend` an HTTP workload; `tlsapp` a workload that
speaks TLS itself (a TCP inbound, so its sidecar never parses the bytes). Each test pushes
the configuration it needs; Permissive comes from the mesh's CA backend mode or from a
MeshTLS policy on a Strict mesh.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, serving, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

APP_NAME = "tlsapp.test"


def mesh(mode: str) -> str:
    return f"""\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      mode: {mode}
"""


ALLOW_ALL = """\
type: MeshTrafficPermission
name: allow-all
mesh: default
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Allow}
"""

MESHTLS_PERMISSIVE = """\
type: MeshTLS
name: permissive
mesh: default
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {mode: Permissive}
"""

# How each test makes the inbounds Permissive: the mesh's CA mode, or a MeshTLS on a Strict mesh.
PERMISSIVE = {
    "mesh-mode": (mesh("PERMISSIVE"), ALLOW_ALL),
    "meshtls-policy": (mesh("STRICT"), ALLOW_ALL, MESHTLS_PERMISSIVE),
}


class TlsEchoServer:
    """A workload that terminates TLS itself (its own self-signed certificate for APP_NAME) and
    echoes each line after `tlsapp:`."""

    def __init__(self, directory: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, APP_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(APP_NAME)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.cert_file = directory / "tlsapp.crt"
        key_file = directory / "tlsapp.key"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert_file, key_file)
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with self.context.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                while data := tls.recv(4096):
                    tls.sendall(b"tlsapp:" + data)
        except (OSError, ssl.SSLError):
            conn.close()

    def close(self) -> None:
        self.server.close()


def tls_roundtrip(port: int, trust: Path, alpn: list[str] | None = None) -> tuple[str, bytes]:
    """A client doing its own TLS to 127.0.0.1:port, verifying APP_NAME against `trust`: the
    server's certificate subject and the echo of one message."""
    context = ssl.create_default_context(cafile=str(trust))
    if alpn:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=APP_NAME) as tls:
        cert = tls.getpeercert() or {}
        names = [str(pair[1]) for rdn in cert.get("subject", ()) for pair in rdn if pair[0] == "commonName"]
        tls.sendall(b"hello")
        return ",".join(names), tls.recv(4096)


@dataclass
class World:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    ports: dict[str, int]
    backend: Workload
    app: TlsEchoServer
    envoys: dict[str, EnvoyProcess]

    def apply(self, *docs: str) -> None:
        sha = self.push(*docs)
        self.cp.wait_applied(sha, [f"default.{n}" for n in self.envoys], timeout=30)

    def push(self, *docs: str) -> str:
        """Commits the mesh (docs[0]), the policies and the three Dataplanes; the commit id."""
        p = self.ports
        files: dict[str, str | None] = {
            "mesh.yaml": docs[0],
            "policies.yaml": "---\n".join(docs[1:]) or None,
            "web.yaml": dataplane_yaml(
                "web-1", "web", p["web_in"], free_port(), {"backend": p["web_to_backend"], "tlsapp": p["web_to_tlsapp"]}
            ),
            "backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "tlsapp.yaml": dataplane_yaml("tlsapp-1", "tlsapp", p["tlsapp_in"], self.app.port, protocol="tcp"),
        }
        return self.remote.push(files, "change")

    def handshakes_terminated(self, envoy: str, port: int) -> int:
        """TLS handshakes the sidecar itself completed on its inbound listener at `port`."""
        stats = self.envoys[envoy].stats(f"listener.127.0.0.1_{port}.ssl.handshake")
        return sum(v for k, v in stats.items() if k.endswith(".ssl.handshake"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("permissive")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "tlsapp_in", "web_to_backend", "web_to_tlsapp")}
    app = TlsEchoServer(root)
    with Workload("backend") as backend:
        w = World(remote, ControlPlaneProcess(remote.bare, root / "state"), ports, backend, app, {})
        first = w.push(*PERMISSIVE["mesh-mode"])
        try:
            with serving(w.cp, root / "envoys", ("web-1", "backend-1", "tlsapp-1"), first) as envoys:
                w.envoys.update(envoys)
                yield w
        finally:
            app.close()


def mesh_get(world: World) -> tuple[int, str]:
    return http_get(f"http://127.0.0.1:{world.ports['web_to_backend']}/")


@pytest.mark.parametrize("how", sorted(PERMISSIVE))
def test_permissive_serves_mesh_plaintext_and_application_tls_clients(world: World, how: str) -> None:
    world.apply(*PERMISSIVE[how])
    # (a) A mesh sidecar: mTLS terminated by backend's sidecar, which tells the workload who called.
    assert wait_until(lambda: mesh_get(world) == (200, "backend\n"), 10, 0.05, "web -> backend over the mesh")
    xfcc = {k.lower(): v for k, v in world.backend.headers[-1].items()}.get("x-forwarded-client-cert", "")
    assert "URI=spiffe://default/web" in xfcc
    # (b) A plain HTTP client straight to the inbound reaches the workload, with no identity.
    assert http_get(f"http://127.0.0.1:{world.ports['backend_in']}/", timeout=3) == (200, "backend\n")
    assert "spiffe://" not in {k.lower(): v for k, v in world.backend.headers[-1].items()}.get("x-forwarded-client-cert", "")
    # (c) A client doing its own TLS through tlsapp's inbound meets tlsapp's certificate, with
    # or without an ALPN of its own; the sidecar terminates none of these handshakes.
    before = world.handshakes_terminated("tlsapp-1", world.ports["tlsapp_in"])
    for alpn in (None, ["http/1.1"], ["h2", "http/1.1"]):
        assert tls_roundtrip(world.ports["tlsapp_in"], world.app.cert_file, alpn) == (APP_NAME, b"tlsapp:hello"), alpn
    assert world.handshakes_terminated("tlsapp-1", world.ports["tlsapp_in"]) == before


@pytest.mark.parametrize("how", sorted(PERMISSIVE))
def test_application_tls_inside_the_mesh_rides_mtls_to_a_tcp_inbound(world: World, how: str) -> None:
    """web's sidecar offers ALPN kuma, so tlsapp's sidecar terminates the mesh mTLS (one
    handshake counted) and the client's own TLS inside it still reaches tlsapp."""
    world.apply(*PERMISSIVE[how])
    before = world.handshakes_terminated("tlsapp-1", world.ports["tlsapp_in"])
    assert wait_until(
        lambda: tls_roundtrip(world.ports["web_to_tlsapp"], world.app.cert_file) == (APP_NAME, b"tlsapp:hello"),
        10,
        0.05,
        "web -> tlsapp over the mesh",
    )
    assert world.handshakes_terminated("tlsapp-1", world.ports["tlsapp_in"]) > before


def test_strict_still_refuses_plaintext_and_application_tls(world: World) -> None:
    """The passthrough chains exist only in Permissive: under Strict the same clients fail."""
    world.apply(mesh("STRICT"), ALLOW_ALL)
    assert wait_until(lambda: mesh_get(world) == (200, "backend\n"), 10, 0.05, "web -> backend over the mesh")

    def refused(call: object) -> bool:
        try:
            call()  # type: ignore[operator]
        except (OSError, ssl.SSLError):
            return True
        return False

    assert wait_until(lambda: refused(lambda: tls_roundtrip(world.ports["tlsapp_in"], world.app.cert_file)), 10, 0.1, "app TLS refused")
    assert wait_until(
        lambda: refused(lambda: http_get(f"http://127.0.0.1:{world.ports['backend_in']}/", timeout=3)), 10, 0.1, "plain refused"
    )
    world.apply(*PERMISSIVE["mesh-mode"])
