"""Real Envoys via `reconciler run-dataplane` against `reconciler serve` with its defaults:
xDS over TLS and dataplane tokens required."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.ca.tokens import decode_unverified
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.security.support import MESH, revocation_secret
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    work: Path
    backend: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess]

    def files(self, **extra: str | None) -> dict[str, str | None]:
        p = self.ports
        return {
            "mesh.yaml": MESH,
            "web.yaml": dataplane_yaml("web", "web", p["web_in"], free_port(), {"backend": p["web_out"]}),
            "backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "other.yaml": dataplane_yaml("other-1", "other", p["other_in"], free_port()),
            "revocations.yaml": None,
            **extra,
        }

    def push(self, **extra: str | None) -> str:
        return self.remote.push(self.files(**extra))

    def traffic(self) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports['web_out']}/")

    def refused(self, envoy: EnvoyProcess, message: str) -> None:
        """Envoy logs the control plane's refusal and never gets a config."""
        envoy.start(wait=False)
        wait_until(lambda: message in envoy.output(), 15, what=f"{message!r} in {envoy.name}'s log")
        wait_until(lambda: envoy.stats("server.state"), 10, what="envoy admin")
        assert not envoy.ready()
        assert not envoy.stats("listener_manager.total_listeners_active").get("listener_manager.total_listeners_active")
        proxy = (self.cp.status() or {})["proxies"].get(f"default.{envoy.name}", {})
        assert not proxy.get("connected")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("auth")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_out", "backend_in", "other_in")}
    with Workload("backend") as backend:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), root / "envoys", backend, ports, {})
        sha = m.push()
        m.cp.start()
        try:
            for name in ("web", "backend-1"):
                m.envoys[name] = EnvoyProcess(m.cp, m.work, name=name)
                m.envoys[name].start()
            m.cp.wait_applied(sha, ["default.web", "default.backend-1"])
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def test_envoy_with_a_valid_token_gets_its_config_over_tls_and_carries_traffic(mesh: Mesh) -> None:
    assert mesh.traffic() == (200, "backend\n")
    for envoy in mesh.envoys.values():
        stats = envoy.stats("cluster.ads_cluster.ssl.")
        assert stats.get("cluster.ads_cluster.ssl.handshake", 0) >= 1, stats
        assert envoy.stats("control_plane.connected_state")["control_plane.connected_state"] == 1
    assert "xds tls" in mesh.cp.output()


def test_envoy_without_a_token_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    envoy = EnvoyProcess(mesh.cp, tmp_path, name="other-1", issue_token=False)
    try:
        mesh.refused(envoy, "dataplane token required for default.other-1")
    finally:
        envoy.stop()


def test_envoy_with_the_token_of_another_dataplane_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    envoy = EnvoyProcess(mesh.cp, tmp_path, name="other-1", token=mesh.cp.issue_token("web"))
    try:
        mesh.refused(envoy, "dataplane token does not admit default.other-1: the token is for dataplane default.web")
    finally:
        envoy.stop()


def test_envoy_with_an_expired_token_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    envoy = EnvoyProcess(mesh.cp, tmp_path, name="other-1", token=mesh.cp.issue_token("other-1", valid_for="1s"))
    try:
        time.sleep(1.5)
        mesh.refused(envoy, "invalid dataplane token: token expired at")
    finally:
        envoy.stop()


def test_envoy_that_does_not_trust_the_control_planes_ca_cannot_connect(mesh: Mesh, tmp_path: Path) -> None:
    from reconciler.ca.xds_tls import ca_cert_path, default_names, load_or_create

    load_or_create(tmp_path, default_names("127.0.0.1"))
    envoy = EnvoyProcess(mesh.cp, tmp_path / "envoys", name="other-1", ca_cert=ca_cert_path(tmp_path))
    try:
        envoy.start(wait=False)
        failed = "cluster.ads_cluster.ssl.fail_verify_error"
        wait_until(lambda: envoy.stats(failed).get(failed, 0) >= 1, 15, what="a failed certificate verification")
        assert envoy.stats("cluster.ads_cluster.ssl.handshake").get("cluster.ads_cluster.ssl.handshake", 0) == 0
        assert not envoy.ready()
        assert "default.other-1" not in (mesh.cp.status() or {})["proxies"]
    finally:
        envoy.stop()


def test_revoked_token_pushed_to_git_disconnects_the_envoy_and_keeps_it_out(mesh: Mesh, tmp_path: Path) -> None:
    token = mesh.cp.issue_token("other-1")
    token_id = decode_unverified(token)[1].token_id
    envoy = EnvoyProcess(mesh.cp, tmp_path / "first", name="other-1", token=token)
    envoy.start()
    try:
        wait_until(lambda: (mesh.cp.status() or {})["proxies"].get("default.other-1", {}).get("synced"), 15, what="other-1 synced")
        sha = mesh.push(**{"revocations.yaml": revocation_secret([token_id])})
        mesh.cp.wait_applied(sha, ["default.web", "default.backend-1"])
        wait_until(
            lambda: envoy.stats("control_plane.connected_state")["control_plane.connected_state"] == 0, 15, what="other-1 disconnected"
        )
        wait_until(lambda: f"token {token_id} is revoked" in envoy.output(), 15, what="the refusal of the reconnect in Envoy's log")
        assert f"dataplane token {token_id} was revoked" in envoy.output()
        assert not (mesh.cp.status() or {})["proxies"]["default.other-1"]["connected"]
        # Tokens that were not revoked keep working.
        assert mesh.traffic() == (200, "backend\n")
        fresh = EnvoyProcess(mesh.cp, tmp_path / "again", name="other-1", token=token)
        try:
            mesh.refused(fresh, f"token {token_id} is revoked")
        finally:
            fresh.stop()
    finally:
        envoy.stop()
        mesh.cp.wait_applied(mesh.push(), ["default.web", "default.backend-1"])


def test_restart_keeps_the_ca_and_the_signing_key_so_issued_tokens_keep_working(mesh: Mesh, tmp_path: Path) -> None:
    sha = mesh.push()
    mesh.cp.wait_applied(sha, ["default.web", "default.backend-1"])
    ca = mesh.cp.ca_cert.read_bytes()  # type: ignore[union-attr]
    key = (mesh.cp.state_dir / "dataplane-tokens" / "1.pem").read_bytes()
    issued_before = mesh.cp.issue_token("other-1")
    mesh.cp.stop()
    mesh.cp.start()
    mesh.cp.wait_applied(sha, ["default.web", "default.backend-1"])
    assert mesh.cp.ca_cert.read_bytes() == ca  # type: ignore[union-attr]
    assert (mesh.cp.state_dir / "dataplane-tokens" / "1.pem").read_bytes() == key
    assert mesh.traffic() == (200, "backend\n")
    envoy = EnvoyProcess(mesh.cp, tmp_path, name="other-1", token=issued_before)
    try:
        envoy.start()
        mesh.cp.wait_applied(sha, ["default.other-1"])
    finally:
        envoy.stop()
