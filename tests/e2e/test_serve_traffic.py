"""`reconciler serve` with real Envoys carrying real HTTP traffic, driven by `git push`.

One control plane, one bare repository and a set of sidecars are shared by the module; each
test pushes the complete configuration it needs, so tests do not depend on their order.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\n"


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    work: Path
    web: Workload
    backend: Workload
    other: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess]

    def base_files(self, web_outbounds: dict[str, int] | None = None) -> dict[str, str | None]:
        p = self.ports
        return {
            "meshes/default.yaml": MESH,
            "dataplanes/web.yaml": dataplane_yaml(
                "web", "web", p["web_in"], self.web.port, web_outbounds or {"backend": p["web_to_backend"]}
            ),
            "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "dataplanes/other.yaml": None,
            "policies/timeouts.yaml": None,
        }

    def push(self, files: dict[str, str | None], message: str = "change") -> str:
        return self.remote.push(files, message)

    def via_web(self, port_key: str, path: str = "/") -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports[port_key]}{path}")

    def reset(self) -> str:
        sha = self.push(self.base_files(), "reset")
        self.cp.wait_applied(sha, ["default.web", "default.backend-1"])
        return sha


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("serve")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "other_in", "web_to_backend", "web_to_other")}
    with Workload("web") as web, Workload("backend") as backend, Workload("other") as other:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), root / "envoys", web, backend, other, ports, {})
        first = m.push(m.base_files(), "initial config")
        m.cp.start()
        try:
            for name in ("web", "backend-1"):
                m.envoys[name] = EnvoyProcess(m.cp, m.work, name=name)
                m.envoys[name].start()
            m.cp.wait_applied(first, ["default.web", "default.backend-1"])
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def test_request_to_outbound_reaches_the_service_through_both_envoys(mesh: Mesh) -> None:
    mesh.reset()
    before = mesh.backend.total
    status, body = mesh.via_web("web_to_backend", "/hello")
    assert (status, body) == (200, "backend\n")
    assert mesh.backend.total == before + 1
    # The request went through web's outbound listener and backend's inbound listener.
    web_stats = mesh.envoys["web"].stats("http.backend.downstream_rq_completed")
    assert web_stats.get("http.backend.downstream_rq_completed", 0) >= 1
    inbound = f"http.inbound_127_0_0_1_{mesh.ports['backend_in']}.downstream_rq_completed"
    assert mesh.envoys["backend-1"].stats(inbound).get(inbound, 0) >= 1
    assert "x-request-id" in {k.lower() for k in mesh.backend.headers[-1]}


def test_push_adding_a_service_routes_traffic_to_it_without_restarting_envoy(mesh: Mesh) -> None:
    mesh.reset()
    web = mesh.envoys["web"]
    pid = web.proc.pid if web.proc else None
    p = mesh.ports
    files = mesh.base_files({"backend": p["web_to_backend"], "other": p["web_to_other"]})
    files["dataplanes/other.yaml"] = dataplane_yaml("other-1", "other", p["other_in"], mesh.other.port)
    sha = mesh.push(files, "add other service")
    other = EnvoyProcess(mesh.cp, mesh.work, name="other-1")
    other.start()
    try:
        mesh.cp.wait_applied(sha, ["default.web", "default.backend-1", "default.other-1"])
        assert wait_until(lambda: mesh.via_web("web_to_other") == (200, "other\n"), 10, what="traffic to the new service")
        assert web.proc is not None and web.proc.pid == pid and web.alive()
        assert mesh.via_web("web_to_backend") == (200, "backend\n")
    finally:
        mesh.reset()
        other.stop()


def test_invalid_push_changes_nothing_and_status_shows_the_errors(mesh: Mesh) -> None:
    good = mesh.reset()
    files = mesh.base_files()
    files["policies/timeouts.yaml"] = """\
type: MeshTimeout
name: broken
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: forever
"""
    files["dataplanes/backend.yaml"] = None  # would remove the backend if it were applied
    bad = mesh.push(files, "broken timeout")
    status = mesh.cp.wait_attempted(bad)
    assert status["lastAppliedRevision"] == f"main@sha1:{good}"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Stalled"]["reason"] == "ValidationFailed"
    (error,) = status["lastFailure"]["errors"]
    assert (error["file"], error["line"], error["pointer"]) == ("policies/timeouts.yaml", 11, "/spec/to/0/default/idleTimeout")
    assert error["resource"] == {"type": "MeshTimeout", "mesh": "default", "name": "broken"}
    # Traffic is exactly as before: the backend is still there.
    assert mesh.via_web("web_to_backend") == (200, "backend\n")
    fixed = mesh.reset()
    status = mesh.cp.wait_applied(fixed)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True"}


def test_config_envoy_rejects_is_recorded_not_resent_and_old_config_keeps_serving(mesh: Mesh) -> None:
    mesh.reset()
    # Another process holds the port, so Envoy cannot bind the new outbound listener.
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        sha = mesh.push(mesh.base_files({"backend": mesh.ports["web_to_backend"], "nowhere": taken}), "outbound on a taken port")

        def nacked() -> dict[str, object] | None:
            status = mesh.cp.status() or {}
            lds = status.get("proxies", {}).get("default.web", {}).get("types", {}).get("LDS", {})
            return lds if lds.get("nack", {}).get("revision") == sha else None

        lds = wait_until(nacked, 15, what="LDS NACK from web's Envoy")
        assert f"127.0.0.1:{taken}" in lds["nack"]["message"] or "bind" in lds["nack"]["message"]
        pushes = lds["pushes"]
        time.sleep(2)
        later = mesh.cp.status()["proxies"]["default.web"]["types"]["LDS"]
        assert later["pushes"] == pushes, "the rejected listener set was sent again"
        assert later["nack"]["count"] == 1
        assert not mesh.cp.status()["proxies"]["default.web"]["synced"]
        # Envoy keeps its last good listeners.
        assert mesh.via_web("web_to_backend") == (200, "backend\n")
    finally:
        blocker.close()
    mesh.reset()


def test_server_restart_keeps_traffic_flowing_and_resumes_the_same_config(mesh: Mesh) -> None:
    sha = mesh.reset()
    web = mesh.envoys["web"]
    before = web.config_dump()
    failures: list[object] = []
    done = threading.Event()
    count = 0

    def load() -> None:
        nonlocal count
        while not done.is_set():
            try:
                result = mesh.via_web("web_to_backend")
            except Exception as e:  # a refused connection is a failure to report, not to raise here
                result = (0, repr(e))
            if result != (200, "backend\n"):
                failures.append(result)
            count += 1
            time.sleep(0.01)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.3)
        mesh.cp.stop()
        time.sleep(1.5)
        mesh.cp.start()
        mesh.cp.wait_applied(sha, ["default.web", "default.backend-1"])
        time.sleep(0.3)
    finally:
        done.set()
        worker.join(10)
    assert count > 50
    assert failures == []
    status = mesh.cp.status()
    assert status["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert _dynamic_versions(web.config_dump()) == _dynamic_versions(before)


def _dynamic_versions(dump: dict[str, object]) -> dict[str, str]:
    out = {}
    for config in dump["configs"]:  # type: ignore[attr-defined]
        kind = config["@type"].rsplit(".", 1)[-1]
        for key in ("dynamic_active_clusters", "dynamic_listeners"):
            for item in config.get(key, []):
                name = item.get("name") or item.get("cluster", {}).get("name")
                version = item.get("version_info") or item.get("active_state", {}).get("version_info")
                if version:  # a listener Envoy refused is listed with only its error_state
                    out[f"{kind}/{name}"] = version
    return out


def test_dataplane_registered_from_node_metadata_joins_and_leaves_the_service(mesh: Mesh, tmp_path: Path) -> None:
    mesh.reset()
    replica_port = free_port()
    with Workload("backend-replica") as replica:
        file = tmp_path / "backend-2.yaml"
        file.write_text(dataplane_yaml("backend-2", "backend", replica_port, replica.port))
        envoy = EnvoyProcess(mesh.cp, mesh.work, name="backend-2", dataplane_file=file)
        envoy.start()
        try:
            dataplanes = wait_until(
                lambda: {d["node"]: d for d in mesh.cp.get("/status/dataplanes")}.get("default.backend-2"), 10, what="registration"
            )
            assert dataplanes["source"] == "registered"
            seen = set()
            for _ in range(60):
                seen.add(mesh.via_web("web_to_backend")[1])
                if seen == {"backend\n", "backend-replica\n"}:
                    break
            assert seen == {"backend\n", "backend-replica\n"}
        finally:
            envoy.stop()
        # Gone with its stream: traffic only reaches the dataplane declared in git.
        wait_until(
            lambda: "default.backend-2" not in {d["node"] for d in mesh.cp.get("/status/dataplanes") if d["source"] != "unknown"},
            10,
            what="unregistration",
        )
        assert {mesh.via_web("web_to_backend")[1] for _ in range(20)} == {"backend\n"}


def test_registered_dataplane_with_invalid_resource_is_refused_with_the_errors(mesh: Mesh, tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(dataplane_yaml("broken-1", "broken", 70000, 8080))
    envoy = EnvoyProcess(mesh.cp, mesh.work, name="broken-1", dataplane_file=file)
    envoy.start(wait=False)
    try:
        wait_until(lambda: "invalid Dataplane in node metadata" in envoy.output(), 15, what="the refusal in Envoy's log")
        assert "/networking/inbound/0/port" in envoy.output()
        assert not envoy.ready()
    finally:
        envoy.stop()


def test_delta_xds_sidecar_gets_config_and_follows_pushes(mesh: Mesh) -> None:
    mesh.reset()
    p = mesh.ports
    delta_in, delta_out = free_port(), free_port()
    files = mesh.base_files()
    files["dataplanes/delta.yaml"] = dataplane_yaml("delta-client", "delta-client", delta_in, free_port(), {"backend": delta_out})
    sha = mesh.push(files, "delta client")
    envoy = EnvoyProcess(mesh.cp, mesh.work, name="delta-client", mode="delta")
    envoy.start()
    try:
        mesh.cp.wait_applied(sha, ["default.delta-client"])
        assert wait_until(lambda: http_get(f"http://127.0.0.1:{delta_out}/") == (200, "backend\n"), 10, what="delta traffic")
        assert mesh.cp.status()["proxies"]["default.delta-client"]["mode"] == "delta"
        files["dataplanes/other.yaml"] = dataplane_yaml("other-1", "other", p["other_in"], mesh.other.port)
        files["dataplanes/delta.yaml"] = dataplane_yaml("delta-client", "delta-client", delta_in, free_port(), {"other": delta_out})
        sha = mesh.push(files, "delta client now calls other")
        other = EnvoyProcess(mesh.cp, mesh.work, name="other-1")
        other.start()
        try:
            mesh.cp.wait_applied(sha, ["default.delta-client", "default.other-1"])
            assert wait_until(lambda: http_get(f"http://127.0.0.1:{delta_out}/") == (200, "other\n"), 10, what="delta update")
        finally:
            other.stop()
    finally:
        envoy.stop()
        mesh.push({"dataplanes/delta.yaml": None}, "remove delta client")
        mesh.reset()


def test_status_command_and_metrics_show_what_is_served(mesh: Mesh) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    sha = mesh.reset()
    result = CliRunner().invoke(cli, ["status", "--server", mesh.cp.api])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"applied:   main@sha1:{sha}"
    assert f"Ready=True ReconciliationSucceeded: Applied revision: main@sha1:{sha}" in lines
    web_rows = [line.split() for line in lines if line.startswith("default.web ")]
    # Sidecar listeners carry their routes inline (Kuma's shape): no RDS.
    assert {row[2] for row in web_rows} == {"CDS", "EDS", "LDS"}
    assert all(row[1] == "yes" for row in web_rows)
    metrics = mesh.cp.get("/metrics")
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line and not line.startswith("#")}
    assert values["reconciler_connected_proxies"] >= 2
    assert values['reconciler_xds_pushes_total{type="LDS"}'] >= 2
    assert values['reconciler_reconciles_total{outcome="applied"}'] >= 1
    assert f'reconciler_applied_info{{revision="{sha}"}}' in values
    unreachable = CliRunner().invoke(cli, ["status", "--server", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert "cannot reach the control plane" in unreachable.output
