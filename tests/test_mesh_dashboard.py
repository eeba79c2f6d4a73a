"""deploy/grafana/mesh.json and deploy/prometheus/prometheus.yml against a live mesh.

A dashboard that queries a metric nobody exports draws an empty panel and says nothing; so
every PromQL expression of the mesh dashboard is read, its metric names and label names
listed, and each is looked up in a live scrape of a real sidecar after real traffic (two
sidecars, `web` calling `api`, some calls answered 500). A label the sidecar does not put on
its samples must be one the Prometheus scrape config attaches to the sidecars' targets.

The scrape is of each proxy's MeshMetric Prometheus endpoint, the one the scrape config
points Prometheus at. It asks as Prometheus asks (OpenMetrics first), and the names are read
as Prometheus stores them: from OpenMetrics a counter's samples end in `_total`
(`envoy_cluster_upstream_rq_xx_total`), as in Kuma's dashboards.
"""

from __future__ import annotations

import http.server
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.demo_telemetry import prometheus_targets
from reconciler.source.git import read_directory
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, Workload, free_port, http_get, serving, wait_until
from tests.support import dataplane_yaml, gateway_yaml

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "mesh.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SIDECAR_JOB = "kuma-dataplanes"
# The outbound panels' clusters: all but the proxy's own (xDS, the local application, the
# metrics hijacker `_kuma:…`, MeshTrace's and MeshAccessLog's collectors).
OUTBOUND_EXCLUDED = "ads_cluster|localhost_.*|_.*|meshtrace_.*|system_.*"

# PromQL words that are not metric names: functions, aggregations and their modifiers.
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "count", "avg", "max", "min",
    "clamp_min", "clamp_max", "vector", "or", "and", "unless", "on", "ignoring", "group_left", "group_right",
    "label_values", "topk", "bottomk", "sort_desc", "bool", "offset",
}  # fmt: skip


def _metric_yaml(name: str, port: int, target: str = "") -> str:
    target = target or f"kind: Dataplane\n    name: {name}"
    return f"""\
type: MeshMetric
name: prometheus-{name}
mesh: default
spec:
  targetRef:
    {target}
  default:
    backends:
      - type: Prometheus
        prometheus:
          port: {port}
          path: /metrics
"""


@dataclass
class Scrape:
    """Sample name → the label names seen on it, from one sidecar's Prometheus text."""

    source: str
    labels: dict[str, set[str]]


# `name{a="x",b="y"} 1` or `name 1`: a sample line of the Prometheus text format and of OpenMetrics.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')
# What Prometheus asks a target for: OpenMetrics first (where counters end in `_total`), then text.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def parse_scrape(source: str, text: str) -> Scrape:
    """The sample names as Prometheus stores them: as the lines give them (a parser such as
    prometheus_client's text parser would rename text-format counters)."""
    labels: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None:
            continue
        labels.setdefault(match.group(1), set()).update(LABEL.findall(match.group(2) or ""))
    return Scrape(source, labels)


class _Fails:
    """Workload behaviour: `/fail…` answers 500, so the error panels have something to show."""

    def __call__(self, handler: http.server.BaseHTTPRequestHandler) -> bool:
        if not handler.path.startswith("/fail"):
            return False
        handler.send_response(500)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scrape]]:
    root = tmp_path_factory.mktemp("mesh-dashboard")
    remote = ConfigRemote(root)
    p = {
        k: free_port()
        for k in ("web_in", "web_app", "api_in", "api_app", "to_api", "web_metrics", "api_metrics", "edge_metrics", "edge_http")
    }
    files: dict[str, str | None] = {
        "mesh.yaml": "type: Mesh\nname: default\n",
        "dataplanes/web.yaml": dataplane_yaml("web-1", "web", p["web_in"], p["web_app"], outbounds={"api": p["to_api"]}),
        "dataplanes/api.yaml": dataplane_yaml("api-1", "api", p["api_in"], p["api_app"]),
        "policies/web-metrics.yaml": _metric_yaml("web-1", p["web_metrics"]),
        "policies/api-metrics.yaml": _metric_yaml("api-1", p["api_metrics"]),
        # The builtin gateway's endpoint: a Dataplane targetRef selects sidecars only.
        "policies/edge-metrics.yaml": _metric_yaml("edge-1", p["edge_metrics"], "kind: Mesh\n    proxyTypes: [Gateway]"),
        "gateway.yaml": gateway_yaml(p["edge_http"], "api"),
    }
    first = remote.push(files, "two sidecars with MeshMetric")
    cp = ControlPlaneProcess(remote.bare, root / "state")
    names = ["web-1", "api-1", "edge-1"]
    with Workload("api", port=p["api_app"], behaviour=_Fails()), serving(cp, root / "envoys", names, first) as envoys:
        for url in (f"http://127.0.0.1:{p['to_api']}", f"http://127.0.0.1:{p['edge_http']}"):
            wait_until(lambda u=url: http_get(u + "/ok")[0] == 200, 20, 0.1, f"api through {url}")
            statuses = [http_get(url + ("/fail" if i % 5 == 0 else "/ok"))[0] for i in range(50)]
            assert statuses.count(500) == 10 and statuses.count(200) == 40
        yield {name.split("-")[0]: _scrape(p[f"{name.split('-')[0]}_metrics"]) for name in envoys}


def _scrape(metrics_port: int) -> Scrape:
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def scraped() -> str:
        status, text = http_get(url, {"Accept": PROMETHEUS_ACCEPT}, timeout=2)
        # The endpoint reads Envoy's stats with `usedonly`, and Envoy counts a histogram as
        # used once its stats flush (every 5 s) merged a recorded value: what Prometheus sees
        # on its next scrape.
        return text if status == 200 and "envoy_http_downstream_rq_time_bucket{" in text else ""

    return parse_scrape(url, wait_until(scraped, 20, 0.5, f"{url} serving the request time histograms"))


# -- reading the dashboard -----------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard: where it is, and what it reads."""

    where: str
    expr: str
    labels: dict[str, frozenset[str]]
    """Metric name → the label names the query needs on it: its matchers' and the groupings'
    (`le` for a histogram's buckets)."""

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(self.labels)


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels") or ()


STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"\{([^}]*)\}")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def parse_query(where: str, expr: str) -> Query:
    """The metric and label names of a PromQL expression (the dashboard's own subset: every
    selector is `metric{matchers}`, groupings are `by (…)`)."""
    matched: dict[str, set[str]] = {}
    grouped: set[str] = set()
    strings = {}

    def keep_string(m: re.Match[str]) -> str:
        strings[len(strings)] = m.group(0)
        return f'"{len(strings) - 1}"'

    text = STRING.sub(keep_string, expr)
    for m in SELECTOR.finditer(text):
        names = re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2))
        matched.setdefault(m.group(1), set()).update(names)
    text = MATCHERS.sub(" ", text)
    for m in GROUPING.finditer(text):
        grouped.update(n.strip() for n in m.group(1).split(",") if n.strip())
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors: [$__rate_interval]
    text = re.sub(r'"\d+"', " ", text)
    metrics = set()
    for m in IDENTIFIER.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name in PROMQL_WORDS:
            assert name in PROMQL_WORDS, f"{where}: unknown PromQL function {name!r} in {expr}"
        else:
            metrics.add(name)
    assert metrics == set(matched), f"{where}: write every selector as metric{{…}}: {expr}"
    labels = {m: frozenset(matched[m] | grouped | ({"le"} if m.endswith("_bucket") else set())) for m in metrics}
    return Query(where, expr, labels)


def dashboard_queries() -> list[Query]:
    dashboard = _dashboard()
    out = []
    for panel in _panels(dashboard):
        for target in panel.get("targets") or ():
            out.append(parse_query(f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        call = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query)
        assert call, f"variable {variable['name']}: {query}"
        selector = parse_query(f"variable {variable['name']}", call.group(1))
        out.append(Query(selector.where, query, {m: labels | {call.group(2)} for m, labels in selector.labels.items()}))
    return out


def target_labels() -> set[str]:
    """The labels every target of the sidecar job carries: its static and file_sd groups' labels
    (files relative to prometheus.yml, as Prometheus reads them)."""
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == SIDECAR_JOB]
    groups = list(job.get("static_configs") or ())
    for sd in job.get("file_sd_configs") or ():
        for pattern in sd["files"]:
            for path in sorted(PROMETHEUS.parent.glob(pattern)):
                loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
                groups += loaded
    assert groups, f"no targets for job {SIDECAR_JOB} in {PROMETHEUS}"
    common = set.intersection(*(set(g.get("labels") or {}) for g in groups))
    return {label for label in common if not label.startswith("__")}


# -- the tests ------------------------------------------------------------------------------------
def test_every_panel_has_a_query_and_the_expected_panels_are_there() -> None:
    dashboard = _dashboard()
    titles = [p["title"] for p in _panels(dashboard) if p["type"] != "row"]
    for needed in ("Request rate by service", "Error rate by service (5xx share)", "Latency percentiles by service"):
        assert needed in titles
    assert all(p.get("targets") for p in _panels(dashboard) if p["type"] != "row")
    assert len({p["id"] for p in _panels(dashboard)}) == len(list(_panels(dashboard)))


def test_the_query_reader_finds_metrics_and_labels() -> None:
    # The reader the next tests rely on: it must not take a function, a label or a string for a metric.
    q = parse_query(
        "example",
        'histogram_quantile(0.99, sum by (le, kuma_io_service) (rate(envoy_http_downstream_rq_time_bucket{mesh="$mesh",'
        'envoy_http_conn_manager_prefix=~"inbound_.*"}[$__rate_interval]))) / sum(envoy_server_live{a="b"} == 1)',
    )
    assert q.labels == {
        "envoy_http_downstream_rq_time_bucket": {"le", "kuma_io_service", "mesh", "envoy_http_conn_manager_prefix"},
        "envoy_server_live": {"a", "le", "kuma_io_service"},
    }
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        parse_query("example", "made_up(envoy_server_live{})")


def test_every_metric_a_panel_queries_is_in_a_live_sidecar_scrape(scrapes: dict[str, Scrape]) -> None:
    exported = set().union(*(s.labels for s in scrapes.values()))
    missing = [f"{q.where}: {m}" for q in dashboard_queries() for m in sorted(q.metrics) if m not in exported]
    assert missing == [], f"not in {[s.source for s in scrapes.values()]}"


def test_every_label_a_panel_uses_is_on_the_samples_or_given_by_the_scrape_config(scrapes: dict[str, Scrape]) -> None:
    given = target_labels()
    assert {"mesh", "kuma_io_service", "dataplane", "kuma_proxy_role"} <= given
    missing = []
    for q in dashboard_queries():
        for metric, needed in q.labels.items():
            on_samples = set().union(*(s.labels.get(metric, set()) for s in scrapes.values()))
            missing += [f"{q.where}: {metric} has no label {label}" for label in sorted(needed - on_samples - given)]
    assert missing == []


def test_the_inbound_and_outbound_filters_select_the_traffic_that_was_sent(scrapes: dict[str, Scrape]) -> None:
    assert f'envoy_cluster_name!~"{OUTBOUND_EXCLUDED}"' in DASHBOARD.read_text().replace('\\"', '"')
    # The panels select inbound traffic by the connection manager's stat prefix and outbound
    # calls by cluster name: after web → api, api's inbound prefix and web's api cluster match.
    api, web = scrapes["api"].source, scrapes["web"].source
    api_text, web_text = http_get(api, {"Accept": PROMETHEUS_ACCEPT})[1], http_get(web, {"Accept": PROMETHEUS_ACCEPT})[1]
    inbound = re.findall(
        r'^envoy_http_downstream_rq_total\{[^}]*envoy_http_conn_manager_prefix="(inbound_[^"]*)"[^}]*\} (\d+)', api_text, re.M
    )
    assert inbound and sum(int(v) for _, v in inbound) >= 50, api_text[:2000]
    outbound = re.findall(r'^envoy_cluster_upstream_rq_total\{[^}]*envoy_cluster_name="([^"]*)"[^}]*\} (\d+)', web_text, re.M)
    kept = {name: int(v) for name, v in outbound if not re.fullmatch(OUTBOUND_EXCLUDED, name)}
    assert set(kept) == {"api"} and kept["api"] >= 50, outbound
    # The gateway panels select the gateway's own connection managers: its traffic is there.
    edge_text = http_get(scrapes["edge"].source, {"Accept": PROMETHEUS_ACCEPT})[1]
    gateway = re.findall(r'^envoy_http_downstream_rq_total\{[^}]*envoy_http_conn_manager_prefix="([^"]*)"[^}]*\} (\d+)', edge_text, re.M)
    assert sum(int(v) for name, v in gateway if name not in ("admin", "async-client")) >= 50, gateway
    five = re.findall(r'^envoy_http_downstream_rq_xx(?:_total)?\{[^}]*envoy_response_code_class="5"[^}]*\} (\d+)', api_text, re.M)
    assert five and sum(int(v) for v in five) >= 10


def test_the_example_targets_are_the_example_repos_meshmetric_endpoints() -> None:
    # deploy/prometheus/targets/example-repo.json is what `reconciler demo` computes for the
    # example at its own ports.
    example = json.loads((PROMETHEUS.parent / "targets" / "example-repo.json").read_text())
    expected = [t.file_sd() for t in prometheus_targets(read_directory(ROOT / "example-repo"))]
    assert example == expected
    assert len(expected) == 6
