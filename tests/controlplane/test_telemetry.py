"""The control plane's own telemetry, seen as an operator sees it: a real `reconciler serve`
(started with `--log-format json`) and two real Envoys, driven by `git push`, scraped at
`GET /metrics` and parsed with prometheus_client's parser.

One control plane and its Envoys are shared by the module; each test pushes the complete
configuration it needs first, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from reconciler.api.metrics import PHASES
from tests.api.support import admin_token, request
from tests.controlplane.telemetry import Scrape, scrape
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, free_port, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

PROXIES = ["default.web", "default.backend"]


def timeout_policy(idle: str) -> str:
    """A MeshTimeout on every proxy, in and out: changing `idle` changes both proxies' config."""
    return f"""\
type: MeshTimeout
name: idle
mesh: default
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: {idle}
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: {idle}
"""


@dataclass
class Plane:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess]
    idle: int = 0

    def files(self, outbounds: dict[str, int] | None = None) -> dict[str, str | None]:
        p = self.ports
        self.idle += 1  # every commit changes both proxies' config
        return {
            "meshes/default.yaml": "type: Mesh\nname: default\n",
            "dataplanes/web.yaml": dataplane_yaml("web", "web", p["web_in"], p["web_app"], outbounds or {"backend": p["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane_yaml("backend", "backend", p["backend_in"], p["backend_app"]),
            "policies/idle.yaml": timeout_policy(f"{self.idle}m"),
        }

    def reset(self) -> str:
        sha = self.remote.push(self.files(), "reset")
        self.cp.wait_applied(sha, PROXIES)
        return sha

    def scrape(self) -> Scrape:
        return scrape(self.cp.api)

    def admin(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        reply = request(self.cp.api, "POST", path, body or {}, token=admin_token(self.cp.state_dir))
        assert reply.status == 200, reply.body
        doc: dict[str, object] = reply.json()
        return doc


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root = tmp_path_factory.mktemp("telemetry")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "backend_in", "backend_app", "web_to_backend")}
    cp = ControlPlaneProcess(remote.bare, root / "state")
    cp.args[cp.args.index("serve") : cp.args.index("serve")] = ["--log-format", "json"]  # a group option, as -v
    p = Plane(remote, cp, ports, {})
    first = remote.push(p.files(), "initial config")
    cp.start()
    try:
        for name in ("web", "backend"):
            p.envoys[name] = EnvoyProcess(cp, root / "envoys", name=name)
            p.envoys[name].start()
        cp.wait_applied(first, PROXIES)
        yield p
    finally:
        for envoy in p.envoys.values():
            envoy.stop()
        cp.stop()


def condition(s: Scrape, kind: str) -> str:
    """The status whose `reconciler_condition` sample is 1 (exactly one is)."""
    on = [dict(labels)["status"] for labels, v in s.matching("reconciler_condition", type=kind).items() if v == 1]
    assert len(on) == 1, (kind, on)
    return on[0]


def test_metrics_come_from_prometheus_client_with_process_metrics_and_integer_counts(plane: Plane) -> None:
    plane.reset()
    s = plane.scrape()
    assert s.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert s.value("process_resident_memory_bytes") > 1_000_000
    assert s.value("process_cpu_seconds_total") > 0
    assert s.value("process_open_fds") > 0
    assert list(s.matching("python_info", implementation="CPython").values()) == [1]
    applied = s.value("reconciler_reconciles_total", outcome="applied")
    assert applied >= 2
    # A count is printed as one: `… 3`, not `… 3.0`.
    assert re.search(rf'^reconciler_reconciles_total\{{outcome="applied"\}} {int(applied)}$', s.text, re.M)
    for line in s.text.splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name.endswith(("_count", "_bucket")) or (name.endswith("_total") and not name.endswith("_seconds_total")):
            assert re.fullmatch(r"\S+ \d+", line), line
    # Prometheus asking for OpenMetrics gets it, with the library's content type.
    om = scrape(plane.cp.api, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.rstrip().endswith("# EOF")
    assert om.value("reconciler_reconciles_total", outcome="applied") == applied


def test_a_commit_moves_the_reconcile_and_phase_histograms_and_the_push_to_ack_latency(plane: Plane) -> None:
    plane.reset()
    before = plane.scrape()
    sha = plane.remote.push(plane.files(), "new idle timeout")
    plane.cp.wait_applied(sha, PROXIES)
    after = plane.scrape()

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("reconciler_reconciles_total", outcome="applied") == 1
    assert grew("reconciler_reconcile_duration_seconds_count") == 1
    for phase in PHASES:
        assert grew("reconciler_reconcile_phase_duration_seconds_count", phase=phase) == 1, phase
        assert grew("reconciler_reconcile_phase_duration_seconds_sum", phase=phase) > 0, phase
    # Both proxies got a push (the idle timeout is on their clusters) and ACKed all of it.
    assert grew("reconciler_xds_pushes_total", type="CDS") >= 2
    assert grew("reconciler_xds_acks_total", type="CDS") == grew("reconciler_xds_pushes_total", type="CDS")
    assert grew("reconciler_xds_push_ack_seconds_count") >= 2
    latency = grew("reconciler_xds_push_ack_seconds_sum") / grew("reconciler_xds_push_ack_seconds_count")
    assert 0 < latency < 5
    assert after.value("reconciler_mesh_connected_proxies", mesh="default") == after.value("reconciler_connected_proxies") == 2
    assert after.value("reconciler_applied_info", revision=sha) == 1
    assert condition(after, "Ready") == "True"
    assert (condition(after, "Stalled"), condition(after, "Pinned"), condition(after, "Held")) == ("False", "False", "False")


def test_a_config_envoy_rejects_is_counted_per_type_and_per_proxy(plane: Plane) -> None:
    plane.reset()
    before = plane.scrape()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        # web's new outbound listener cannot bind: its Envoy NACKs the LDS response.
        sha = plane.remote.push(plane.files({"backend": plane.ports["web_to_backend"], "nowhere": taken}), "outbound on a taken port")

        def nacked() -> Scrape | None:
            s = plane.scrape()
            return s if s.value("reconciler_proxy_nacks_total", mesh="default", proxy="web", type="LDS") > 0 else None

        after = wait_until(nacked, 20, what=f"web's LDS NACK of {sha[:12]} in /metrics")
    finally:
        blocker.close()
    assert after.value("reconciler_xds_nacks_total", type="LDS") - before.value("reconciler_xds_nacks_total", type="LDS") == 1
    assert after.value("reconciler_proxy_nacks_total", mesh="default", proxy="web", type="LDS") == 1
    assert not after.matching("reconciler_proxy_nacks_total", proxy="backend")
    plane.reset()


def test_conditions_follow_a_rejected_commit_a_pin_and_a_held_head(plane: Plane) -> None:
    good = plane.reset()
    before = plane.scrape()
    files = plane.files()
    files["policies/idle.yaml"] = timeout_policy("forever")  # not a duration: rejected
    bad = plane.remote.push(files, "broken timeout")
    plane.cp.wait_attempted(bad)
    s = plane.scrape()
    assert (condition(s, "Ready"), condition(s, "Stalled")) == ("False", "True")
    assert s.value("reconciler_reconciles_total", outcome="rejected") - before.value("reconciler_reconciles_total", outcome="rejected") == 1
    assert s.value("reconciler_applied_info", revision=good) == 1

    fixed = plane.reset()
    plane.admin("/rollback", {"revision": fixed})
    s = plane.scrape()
    assert (condition(s, "Ready"), condition(s, "Pinned"), condition(s, "Held")) == ("True", "True", "False")
    try:
        head = plane.remote.push(plane.files(), "valid, while pinned")
        plane.cp.wait_attempted(head)
        s = plane.scrape()
        assert (condition(s, "Pinned"), condition(s, "Held")) == ("True", "True")
        assert s.value("reconciler_reconciles_total", outcome="held") >= 1
        assert s.value("reconciler_applied_info", revision=fixed) == 1
    finally:
        plane.admin("/resume")
    plane.cp.wait_applied(head, PROXIES)
    s = plane.scrape()
    assert (condition(s, "Ready"), condition(s, "Pinned"), condition(s, "Held")) == ("True", "False", "False")


def test_json_log_lines_parse_with_time_level_logger_message_and_fields(plane: Plane) -> None:
    sha = plane.reset()
    lines = [line for line in plane.cp.output().splitlines() if line.strip()]
    records = []
    for line in lines:
        if line.startswith("{"):
            records.append(json.loads(line))
        else:  # nothing of ours in the text format; gRPC's C core writes its own lines
            assert not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) reconciler", line), line
    assert records, "no JSON log lines"
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    reconciled = [r for r in records if r["message"] == "reconciled" and r.get("revision") == sha[:12]]
    assert reconciled, "the reconcile of the last commit was not logged"
    r = reconciled[-1]
    assert (r["level"], r["logger"], r["outcome"]) == ("INFO", "reconciler.controlplane", "applied")
    assert isinstance(r["ms"], float) and r["ms"] >= 0
    serving = next(r for r in records if r["message"] == "serving")
    assert serving["xds"] == plane.cp.xds and serving["api"] == f"127.0.0.1:{plane.cp.api_port}"
    # -v still applies: debug records of the xDS server are there too.
    assert any(r["level"] == "DEBUG" and r["logger"].startswith("reconciler.xds") for r in records)


def test_connected_proxies_per_mesh_follow_an_envoy_that_leaves_and_comes_back(plane: Plane) -> None:
    plane.reset()
    assert plane.scrape().matching("reconciler_mesh_connected_proxies") == {frozenset({("mesh", "default")}): 2}
    plane.envoys["backend"].stop()
    try:
        wait_until(lambda: plane.scrape().value("reconciler_mesh_connected_proxies", mesh="default") == 1, 15, what="backend disconnected")
    finally:
        plane.envoys["backend"].start()
    wait_until(lambda: plane.scrape().value("reconciler_mesh_connected_proxies", mesh="default") == 2, 30, what="backend reconnected")
    plane.reset()


@pytest.fixture(autouse=True)
def _alive(plane: Plane) -> Iterator[None]:
    yield
    assert plane.cp.alive(), plane.cp.output()[-3000:]
