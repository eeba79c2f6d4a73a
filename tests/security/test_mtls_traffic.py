"""Mutual TLS and MeshTrafficPermission with real Envoys and real handshakes.

web and other call backend (HTTP) and db (TCP) through their sidecars. Each test pushes the
whole configuration it needs to the shared bare repository.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.e2e.tcp import EchoServer
from tests.support import ALLOW_ALL, dataplane_yaml

pytestmark = pytest.mark.envoy


def mesh(mode: str = "STRICT", backend: str = "ca-1", expiration: str = "24h", provided: dict[str, str] | None = None) -> str:
    conf = ""
    if provided:
        conf = f"      conf:\n        cert: {{secret: {provided['cert']}}}\n        key: {{secret: {provided['key']}}}\n"
    kind = "provided" if provided else "builtin"
    return f"""\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
mtls:
  enabledBackend: {backend}
  backends:
    - name: {backend}
      type: {kind}
      mode: {mode}
      dpCert:
        rotation:
          expiration: {expiration}
{conf}"""


DENY_WEB = """\
type: MeshTrafficPermission
name: deny-web
mesh: default
spec:
  targetRef:
    kind: MeshSubset
    tags:
      kuma.io/service: backend
  from:
    - targetRef:
        kind: MeshService
        name: web
      default:
        action: Deny
---
type: MeshTrafficPermission
name: deny-web-db
mesh: default
spec:
  targetRef:
    kind: MeshSubset
    tags:
      kuma.io/service: db
  from:
    - targetRef:
        kind: MeshService
        name: web
      default:
        action: Deny
"""


def tcp_roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(payload)
        s.settimeout(3)
        try:
            return s.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return b""


@dataclass
class World:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    ports: dict[str, int]
    backend: Workload
    db: EchoServer
    envoys: dict[str, EnvoyProcess]

    def files(self, mesh_text: str, *policies: str, extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
        p = self.ports
        out: dict[str, str | None] = {
            "mesh.yaml": mesh_text,
            "web.yaml": dataplane_yaml("web-1", "web", p["web_in"], free_port(), {"backend": p["web_to_backend"], "db": p["web_to_db"]}),
            "other.yaml": dataplane_yaml("other-1", "other", p["other_in"], free_port(), {"backend": p["other_to_backend"]}),
            "backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "db.yaml": dataplane_yaml("db-1", "db", p["db_in"], self.db.port, protocol="tcp"),
            "permissions.yaml": "---\n".join(policies) if policies else None,
        }
        out.update(extra or {})
        return out

    def apply(self, files: dict[str, str | None], message: str = "change") -> str:
        sha = self.remote.push(files, message)
        self.cp.wait_applied(sha, [f"default.{n}" for n in self.envoys], timeout=30)
        return sha

    def get(self, key: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports[key]}/")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mtls")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "other_in", "backend_in", "db_in", "web_to_backend", "web_to_db", "other_to_backend")}
    db = EchoServer(prefix=b"db:")
    with Workload("backend") as backend:
        w = World(remote, ControlPlaneProcess(remote.bare, root / "state"), ports, backend, db, {})
        first = remote.push(w.files(mesh(), ALLOW_ALL), "initial")
        w.cp.start()
        try:
            for name in ("web-1", "other-1", "backend-1", "db-1"):
                w.envoys[name] = EnvoyProcess(w.cp, root / "envoys", name=name)
                w.envoys[name].start()
            w.cp.wait_applied(first, [f"default.{n}" for n in w.envoys], timeout=30)
            yield w
        finally:
            for e in w.envoys.values():
                e.stop()
            w.cp.stop()
            db.close()


def plaintext_to_inbound(port: int) -> tuple[int, str] | None:
    """A client outside the mesh talking plain HTTP straight to a sidecar's inbound."""
    try:
        return http_get(f"http://127.0.0.1:{port}/", timeout=3)
    except Exception:
        return None


def test_strict_mtls_carries_mesh_traffic_and_refuses_plaintext(world: World) -> None:
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    assert world.get("web_to_backend") == (200, "backend\n")
    assert tcp_roundtrip(world.ports["web_to_db"]) == b"db:ping"
    # The workload sees who called it.
    assert world.get("web_to_backend") == (200, "backend\n")
    headers = {k.lower(): v for k, v in world.backend.headers[-1].items()}
    assert "URI=spiffe://default/web" in headers.get("x-forwarded-client-cert", "")
    assert plaintext_to_inbound(world.ports["backend_in"]) is None


def test_permissive_mtls_accepts_both_mesh_and_plaintext_clients(world: World) -> None:
    world.apply(world.files(mesh("PERMISSIVE"), ALLOW_ALL))
    assert world.get("web_to_backend") == (200, "backend\n")
    assert plaintext_to_inbound(world.ports["backend_in"]) == (200, "backend\n")
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))


def test_the_certificate_envoy_presents_carries_the_spiffe_id(world: World) -> None:
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    certs = json.loads(http_get(world.envoys["backend-1"].admin + "/certs")[1])["certificates"]
    sans = {san["uri"] for entry in certs for cert in entry["cert_chain"] for san in cert.get("subject_alt_names", []) if "uri" in san}
    assert "spiffe://default/backend" in sans
    assert "kuma://kuma.io/protocol/http" in sans


def test_deny_permission_turns_requests_into_403_and_reverting_restores_them(world: World) -> None:
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    pushed = time.monotonic()
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL, DENY_WEB), "deny web -> backend")
    status = wait_until(lambda: (s := world.get("web_to_backend")[0]) == 403 and s, 5, 0.02, "web denied")
    assert status == 403
    assert time.monotonic() - pushed < 5
    assert world.get("other_to_backend") == (200, "backend\n")
    # TCP: the connection is closed without an answer. The TCP listener is its own resource,
    # so it may take effect a moment after the HTTP one.
    assert wait_until(lambda: tcp_roundtrip(world.ports["web_to_db"]) == b"", 10, 0.05, "tcp denied")
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL), "revert")
    assert wait_until(lambda: world.get("web_to_backend") == (200, "backend\n"), 5, 0.02, "web allowed again")
    assert wait_until(lambda: tcp_roundtrip(world.ports["web_to_db"]) == b"db:ping", 10, 0.05, "tcp allowed again")


def test_with_mtls_and_no_permission_traffic_is_denied(world: World) -> None:
    world.apply(world.files(mesh("STRICT")))
    assert wait_until(lambda: world.get("web_to_backend")[0] == 403, 5, 0.02, "default deny")
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    # Connections opened under the old listener drain (--drain-time-s 1) before they see it.
    assert wait_until(lambda: world.get("web_to_backend") == (200, "backend\n"), 5, 0.02, "allowed again")


def settle(world: World, key: str = "web_to_backend") -> None:
    """Until connections opened under an earlier config drained: 10 answers in a row are 200."""
    streak = 0

    def ok() -> bool:
        nonlocal streak
        streak = streak + 1 if world.get(key) == (200, "backend\n") else 0
        return streak >= 10

    wait_until(ok, 10, 0.02, "a settled mesh")


def _serial(envoy: EnvoyProcess) -> str:
    certs = json.loads(http_get(envoy.admin + "/certs")[1])["certificates"]
    return next(
        c["serial_number"]
        for entry in certs
        for c in entry["cert_chain"]
        if any("spiffe://default/" in s.get("uri", "") for s in c.get("subject_alt_names", []))
    )


class Load:
    """Requests in a loop; every answer that is not 200 is a failure."""

    def __init__(self, world: World, key: str) -> None:
        self.world, self.key = world, key
        self.failures: list[object] = []
        self.count = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                result: object = self.world.get(self.key)
            except Exception as e:  # recorded as a failure
                result = repr(e)
            if result != (200, "backend\n"):
                self.failures.append(result)
            self.count += 1
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def test_certificates_are_renewed_before_expiry_without_failing_a_request(world: World) -> None:
    world.apply(world.files(mesh("STRICT", expiration="8s"), ALLOW_ALL))
    settle(world)
    backend = world.envoys["backend-1"]
    first = wait_until(lambda: _serial(backend), 10, what="a certificate")
    started = time.monotonic()
    with Load(world, "web_to_backend") as load:
        second = wait_until(lambda: (s := _serial(backend)) != first and s, 15, 0.1, "a renewed certificate")
        renewed_after = time.monotonic() - started
        time.sleep(1)
    assert renewed_after < 8, "renewed only after the certificate expired"
    assert second != first
    assert load.count > 20
    assert load.failures == []
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))


def test_switching_to_a_new_ca_keeps_traffic_flowing(world: World) -> None:
    world.apply(world.files(mesh("STRICT", backend="ca-1"), ALLOW_ALL))
    settle(world)
    web = world.envoys["web-1"]
    before = _serial(web)
    with Load(world, "web_to_backend") as load:
        world.apply(world.files(mesh("STRICT", backend="ca-2"), ALLOW_ALL), "rotate to ca-2")
        wait_until(lambda: _serial(web) != before, 10, what="certificates from the new CA")
        time.sleep(1.5)
    assert load.failures == []
    assert world.get("web_to_backend") == (200, "backend\n")


def test_control_plane_restart_keeps_the_same_ca(world: World) -> None:
    sha = world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    ca_before = (world.cp.state_dir / "ca" / "default" / "ca-1" / "ca.crt").read_bytes()
    world.cp.stop()
    world.cp.start()
    world.cp.wait_applied(sha, [f"default.{n}" for n in world.envoys], timeout=30)
    assert (world.cp.state_dir / "ca" / "default" / "ca-1" / "ca.crt").read_bytes() == ca_before
    key = world.cp.state_dir / "ca" / "default" / "ca-1" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert world.get("web_to_backend") == (200, "backend\n")


def _provided_ca() -> tuple[str, str]:
    from reconciler.ca.authority import generate_root

    ca = generate_root("default", "provided-ca", rsa_bits=2048)
    return base64.b64encode(ca.cert_pem).decode(), base64.b64encode(ca.key_pem()).decode()


def test_provided_ca_works_and_survives_a_deleted_state_directory(world: World, tmp_path: Path) -> None:
    cert, key = _provided_ca()
    secrets = f"type: Secret\nname: ca-cert\nmesh: default\ndata: {cert}\n---\ntype: Secret\nname: ca-key\nmesh: default\ndata: {key}\n"
    files = world.files(
        mesh("STRICT", backend="provided-ca", provided={"cert": "ca-cert", "key": "ca-key"}), ALLOW_ALL, extra={"secrets.yaml": secrets}
    )
    sha = world.apply(files, "provided CA")
    assert world.get("web_to_backend") == (200, "backend\n")
    # A fresh control plane with an empty state directory serves certificates from the same CA.
    world.cp.stop()
    fresh = tmp_path / "fresh-state"
    world.cp = ControlPlaneProcess(world.remote.bare, fresh, xds_port=world.cp.xds_port, api_port=world.cp.api_port)
    world.cp.start()
    world.cp.wait_applied(sha, [f"default.{n}" for n in world.envoys], timeout=30)
    assert world.get("web_to_backend") == (200, "backend\n")
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))


def test_config_api_never_serves_private_keys(world: World) -> None:
    world.apply(world.files(mesh("STRICT"), ALLOW_ALL))
    doc = world.cp.get("/config/default/web-1")
    secrets = doc["resources"]["SDS"]
    assert {s["name"] for s in secrets} == {"identity_cert:secret:default", "mesh_ca:secret:default"}
    assert all(s == {"name": s["name"], "content": "<redacted>"} for s in secrets)
    assert "PRIVATE KEY" not in json.dumps(doc)
