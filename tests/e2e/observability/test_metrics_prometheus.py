"""MeshMetric's Prometheus backend with real Envoys: each proxy's `/metrics` on the configured
port and path, answered by run-dataplane's metrics hijacker through Envoy.

One control plane and three proxies are shared by the module: `web-1` (HTTP service web; its
workload also serves its own metrics on /metrics), `client-1` (an outbound to web) and the
builtin gateway `edge-1` (one listener routed to web). Three MeshMetric policies, one per
proxy (they all live on 127.0.0.1, so each needs its own port):

- web: default profiles (Basic), the application's own metrics merged in;
- client: `appendProfiles: [None]` plus a Regex include, and a custom path;
- edge: `appendProfiles: [All]` with an exclude, on the gateway proxy.

Traffic flows client → web and edge → web; the tests scrape before and after and compare.
"""

from __future__ import annotations

import http.server
import re
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from reconciler.dataplane.dynconf import fetch_dynamic_config
from reconciler.dataplane.metrics.exposition import Family, parse
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.support import dataplane_yaml, gateway_yaml

pytestmark = pytest.mark.envoy

PROXIES = ("default.web-1", "default.client-1", "default.edge-1")
DOWNSTREAM = "envoy_http_downstream_rq_total"
CLIENT_REGEX = "^envoy_cluster_upstream_(rq|cx)_total$"


def metric_policy(name: str, target: str, port: int, path: str, sidecar: str = "", applications: str = "") -> str:
    return f"""\
type: MeshMetric
name: {name}
mesh: default
spec:
  targetRef:
{target}
  default:
{sidecar}{applications}    backends:
      - type: Prometheus
        prometheus:
          port: {port}
          path: {path}
"""


def files(ports: dict[str, int], web_port: int) -> dict[str, str | None]:
    return {
        "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
        "dataplanes/web.yaml": dataplane_yaml("web-1", "web", ports["web_in"], web_port),
        "dataplanes/client.yaml": dataplane_yaml("client-1", "client", ports["client_in"], free_port(), {"web": ports["client_out"]}),
        "gateway.yaml": gateway_yaml(ports["edge"], "web"),
        "policies/web.yaml": metric_policy(
            "web-metrics",
            "    kind: MeshService\n    name: web",
            ports["web_metrics"],
            "/metrics",
            applications=f"    applications:\n      - name: web-app\n        port: {web_port}\n        path: /metrics\n",
        ),
        "policies/client.yaml": metric_policy(
            "client-metrics",
            "    kind: MeshService\n    name: client",
            ports["client_metrics"],
            "/custom/stats",
            sidecar=(
                "    sidecar:\n      profiles:\n        appendProfiles:\n          - name: None\n"
                f'        include:\n          - type: Regex\n            match: "{CLIENT_REGEX}"\n'
            ),
        ),
        "policies/edge.yaml": metric_policy(
            "edge-metrics",
            "    kind: MeshGateway\n    name: edge",
            ports["edge_metrics"],
            "/metrics",
            sidecar=(
                "    sidecar:\n      profiles:\n        appendProfiles:\n          - name: All\n"
                "        exclude:\n          - type: Prefix\n            match: envoy_server_\n"
            ),
        ),
    }


def app_metrics(handler: http.server.BaseHTTPRequestHandler, web: list[Workload]) -> bool:
    """web's own /metrics: how many other requests it served, in the Prometheus text format."""
    if handler.path != "/metrics":
        return False
    served = sum(n for path, n in web[0].requests.items() if path != "/metrics")
    body = f'# HELP web_orders_total Orders served.\n# TYPE web_orders_total counter\nweb_orders_total{{shop="books"}} {served}\n'.encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain; version=0.0.4")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    return True


@dataclass
class Mesh:
    root: Path
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def scrape(self, proxy: str, path: str = "/metrics", accept: str = "") -> tuple[int, str, str]:
        port = self.ports[f"{proxy}_metrics"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode(), response.headers.get("Content-Type", "")
        except OSError as e:
            return getattr(e, "code", 0), str(e), ""

    def families(self, proxy: str, path: str = "/metrics") -> dict[str, Family]:
        status, text, _ = self.scrape(proxy, path)
        assert status == 200, text
        return {f.name: f for f in parse(text)}


def served(mesh: Mesh, proxy: str, path: str) -> bool:
    return mesh.scrape(proxy, path)[0] == 200


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root: Path = tmp_path_factory.mktemp("metrics-prometheus")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "client_in", "client_out", "edge", "web_metrics", "client_metrics", "edge_metrics")}
    holder: list[Workload] = []
    with Workload("web", behaviour=lambda h: app_metrics(h, holder)) as web:
        holder.append(web)
        m = Mesh(root, remote, ControlPlaneProcess(remote.bare, root / "state"), web, ports)
        sha = remote.push(files(ports, web.port), "three proxies, a MeshMetric each")
        m.cp.start()
        try:
            for name in ("web-1", "client-1", "edge-1"):
                m.envoys[name] = EnvoyProcess(m.cp, root / "envoys", name=name)
                m.envoys[name].start(wait=False)
            for envoy in m.envoys.values():
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            m.cp.wait_applied(sha, PROXIES)
            # The hijacker polls the dynamic config every second: wait for the first scrape.
            for proxy, path in (("web", "/metrics"), ("client", "/custom/stats"), ("edge", "/metrics")):
                wait_until(partial(served, m, proxy, path), 20, what=f"{proxy} metrics served")
            yield m
        finally:
            for envoy in m.envoys.values():
                envoy.stop()
            m.cp.stop()


def value(family: Family | None, **labels: str) -> float:
    """The sum over the family's samples that carry `labels` (0 when none)."""
    if family is None:
        return 0.0
    return sum(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items()))


def traffic(family: Family | None) -> float:
    """Requests counted by the proxy's own traffic listeners: not the admin endpoint nor Kuma's
    `_kuma:*` listeners, which count the scrapes and config polls themselves."""
    if family is None:
        return 0.0
    return sum(
        s.value
        for s in family.samples
        if (prefix := s.labels.get("envoy_http_conn_manager_prefix", "")) and prefix != "admin" and not prefix.startswith("_")
    )


def client_get(mesh: Mesh, path: str) -> int:
    return http_get(f"http://127.0.0.1:{mesh.ports['client_out']}{path}")[0]


def test_sidecar_request_counters_grow_with_real_traffic(mesh: Mesh) -> None:
    before = mesh.families("web")
    for i in range(5):
        assert client_get(mesh, f"/order/{i}") == 200
    after = wait_until(
        lambda: (f := mesh.families("web")) and traffic(f.get(DOWNSTREAM)) >= traffic(before.get(DOWNSTREAM)) + 5 and f,
        10,
        what="web's inbound request counter grew by 5",
    )
    # Kuma's labels on every Envoy sample: the proxy, its mesh, service and role.
    sample = next(s for s in after[DOWNSTREAM].samples if s.labels["envoy_http_conn_manager_prefix"].startswith("inbound_"))
    assert {k: sample.labels.get(k) for k in ("mesh", "dataplane", "kuma_io_service", "kuma_proxy_role", "otel_scope_name")} == {
        "mesh": "default",
        "dataplane": "web-1",
        "kuma_io_service": "web",
        "kuma_proxy_role": "sidecar",
        "otel_scope_name": "kuma",
    }
    # The client's side saw them too: its upstream request counter to web grew.
    client = mesh.families("client", "/custom/stats")
    assert value(client.get("envoy_cluster_upstream_rq_total"), envoy_cluster_name="web") >= 5


def test_the_application_metrics_are_merged_in_with_the_proxy_labels(mesh: Mesh) -> None:
    first = value(mesh.families("web").get("web_orders_total"), shop="books", dataplane="web-1")
    for i in range(3):
        assert client_get(mesh, f"/book/{i}") == 200
    family = mesh.families("web")["web_orders_total"]
    assert family.type == "counter" and family.help == "Orders served."
    assert value(family, shop="books", dataplane="web-1", kuma_io_service="web") == first + 3
    # Envoy's own families are in the same answer.
    assert "envoy_http_downstream_rq_total" in mesh.families("web")


def test_basic_profile_leaves_out_what_kuma_leaves_out(mesh: Mesh) -> None:
    web = mesh.families("web")
    admin = http_get(mesh.envoys["web-1"].admin + "/stats?format=prometheus&usedonly")[1]
    every = {f.name for f in parse(admin)}
    # Envoy has it, Basic does not publish it (no Basic selector matches the name).
    assert "envoy_listener_manager_total_listeners_active" in every
    assert "envoy_listener_manager_total_listeners_active" not in web

    # Basic drops the samples of Kuma's internal clusters: the xDS one, the hijacker's (`_...`).
    def internal(families: Iterable[Family]) -> set[str]:
        names = {s.labels.get("envoy_cluster_name") or "" for f in families for s in f.samples}
        return {c for c in names if c == "ads_cluster" or c.startswith("_")}

    assert {"ads_cluster", "_kuma_metrics_hijacker"} <= internal(parse(admin))
    assert internal(web.values()) == set()
    # ... and keeps the others (the local application's cluster).
    assert {s.labels.get("envoy_cluster_name") for f in web.values() for s in f.samples} - {None}
    assert "envoy_server_live" in web  # a Basic prefix


def test_none_profile_with_a_regex_include_publishes_only_the_matching_families(mesh: Mesh) -> None:
    assert client_get(mesh, "/regex") == 200
    status, text, _ = mesh.scrape("client", "/custom/stats")
    assert status == 200
    names = {f.name for f in parse(text)}
    assert names and all(re.search(CLIENT_REGEX, n) for n in names), names
    assert "envoy_cluster_upstream_rq_total" in names
    # The default path is not served on this backend: the listener routes its own path only.
    assert mesh.scrape("client", "/metrics")[0] == 404


def test_the_gateway_proxy_publishes_its_metrics_with_all_minus_excluded(mesh: Mesh) -> None:
    def edge_get(path: str) -> int:
        return http_get(f"http://127.0.0.1:{mesh.ports['edge']}{path}")[0]

    wait_until(lambda: edge_get("/warmup") == 200, 15, what="the gateway routing to web")
    before = mesh.families("edge")
    for i in range(4):
        assert edge_get(f"/g/{i}") == 200
    after = wait_until(
        lambda: (f := mesh.families("edge")) and traffic(f.get(DOWNSTREAM)) >= traffic(before.get(DOWNSTREAM)) + 4 and f,
        10,
        what="edge counted 4 requests",
    )
    sample = after[DOWNSTREAM].samples[0]
    assert (sample.labels["kuma_proxy_role"], sample.labels["dataplane"], sample.labels["kuma_io_service"]) == ("gateway", "edge-1", "edge")
    # All publishes what Basic would not, minus the exclude.
    assert "envoy_listener_manager_total_listeners_active" in after
    assert not [n for n in after if n.startswith("envoy_server_")]


def test_openmetrics_when_the_scraper_asks_for_it(mesh: Mesh) -> None:
    status, text, content_type = mesh.scrape("web", accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    assert "# TYPE web_orders counter" in text and 'web_orders_total{shop="books"' in text
    status, text, content_type = mesh.scrape("web")
    assert content_type.startswith("text/plain; version=0.0.4") and "# EOF" not in text


def test_the_dynamic_config_is_served_by_envoy_with_an_etag(mesh: Mesh) -> None:
    work_dir = mesh.root / "envoys" / "web-1"
    config, etag = fetch_dynamic_config(work_dir)
    assert config is not None and etag
    metrics = config["observability"]["metrics"]
    assert metrics["applications"] == [{"name": "web-app", "path": "/metrics", "port": mesh.web.port, "address": ""}]
    assert metrics["backends"] == [{"type": "Prometheus", "name": None}]
    assert metrics["extraLabels"]["dataplane"] == "web-1"
    # Asking again with the ETag: 304, nothing to read.
    assert fetch_dynamic_config(work_dir, etag=etag) == (None, etag)
    # A proxy's work dir without the listener (a plain directory): nothing.
    assert fetch_dynamic_config(mesh.root) == (None, None)


def test_a_policy_change_pushed_through_git_moves_the_endpoint_without_restarts(mesh: Mesh) -> None:
    """Last in the module: it changes the client's policy."""
    pids = {name: envoy.proc.pid for name, envoy in mesh.envoys.items() if envoy.proc is not None}
    changed = metric_policy(
        "client-metrics",
        "    kind: MeshService\n    name: client",
        mesh.ports["client_metrics"],
        "/v2/stats",
        sidecar="    sidecar:\n      profiles:\n        appendProfiles:\n          - name: All\n",
    )
    sha = mesh.remote.push({"policies/client.yaml": changed}, "client metrics: new path, every metric")
    mesh.cp.wait_applied(sha, PROXIES)
    wait_until(lambda: served(mesh, "client", "/v2/stats"), 15, what="the new path served")
    assert mesh.scrape("client", "/custom/stats")[0] == 404
    # The hijacker picked up the new profiles from the dynamic config (polled every second).
    wait_until(
        lambda: "envoy_listener_manager_total_listeners_active" in mesh.families("client", "/v2/stats"), 10, what="All profile in effect"
    )
    assert {name: envoy.proc.pid for name, envoy in mesh.envoys.items() if envoy.proc is not None} == pids
