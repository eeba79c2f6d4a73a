"""MeshTrace in real Envoy: spans of real requests reach collectors started by the test.

One control plane and three proxies are shared by the module: web-1 (the client sidecar, its
outbound to backend on 127.0.0.1), backend-1 (the server sidecar in front of a Workload) and
edge-1 (a builtin gateway whose route sends everything to backend). Each test replaces the one
MeshTrace of the mesh and sends requests on paths of its own, so spans flushed late by an
earlier configuration never count. Envoy batches spans and flushes every few seconds (Zipkin
and OpenTelemetry: 5 s or 5 spans; Datadog: 2 s), so the waits below allow for that.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled, wait_until
from tests.e2e.observability.otlp import OtlpReceiver, attributes
from tests.e2e.observability.trace_receivers import DatadogAgent, ZipkinReceiver
from tests.support import dataplane_yaml, gateway_yaml

pytestmark = pytest.mark.envoy

NAMES = ("web-1", "backend-1", "edge-1")
FLUSH = 7.0
"""Longer than Envoy's span flush interval (5 s): what has not arrived by then never will."""
TAGS = """\
    tags:
      - name: env
        literal: e2e
      - name: tenant
        header:
          name: x-tenant
          default: none
"""


def zipkin_policy(url: str, overall: int = 100) -> str:
    return f"""\
type: MeshTrace
mesh: default
name: tracing
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: Zipkin
        zipkin:
          url: {url}
          traceId128bit: true
    sampling:
      overall: {overall}
{TAGS}"""


def otel_policy(endpoint: str | None) -> str:
    """Through an inline `endpoint`, or (None) a `backendRef` to the mesh's MeshOpenTelemetryBackend."""
    target = f"endpoint: {endpoint}" if endpoint else "backendRef: {kind: MeshOpenTelemetryBackend, labels: {collector: otlp}}"
    return f"""\
type: MeshTrace
mesh: default
name: tracing
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: OpenTelemetry
        openTelemetry:
          {target}
{TAGS}"""


def datadog_policy(url: str) -> str:
    return f"""\
type: MeshTrace
mesh: default
name: tracing
spec:
  targetRef:
    kind: Mesh
  default:
    backends:
      - type: Datadog
        datadog:
          url: {url}
          splitService: true
{TAGS}"""


@dataclass
class World:
    cp: ControlPlaneProcess
    repo: ConfigRemote
    ports: dict[str, int]
    backend: Workload
    zipkin: ZipkinReceiver
    datadog: DatadogAgent
    otlp: OtlpReceiver
    envoys: list[EnvoyProcess] = field(default_factory=list)

    def files(self, policy: str | None) -> dict[str, str | None]:
        p = self.ports
        return {
            "mesh.yaml": 'type: Mesh\nname: default\nskipCreatingInitialPolicies: ["*"]\n',
            "web.yaml": dataplane_yaml("web-1", "web", p["web_in"], p["web_app"], outbounds={"backend": p["to_backend"]}),
            "backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "gateway.yaml": gateway_yaml(p["gateway"], "backend"),
            "otel-backend.yaml": f"""\
type: MeshOpenTelemetryBackend
name: otlp
mesh: default
labels:
  collector: otlp
spec:
  endpoint:
    address: 127.0.0.1
    port: {self.otlp.port}
""",
            "trace.yaml": policy,
        }

    def apply(self, policy: str | None) -> None:
        sha = self.repo.push(self.files(policy), "tracing")
        self.cp.wait_applied(sha, [f"default.{n}" for n in NAMES], timeout=30)
        wait_settled(self.envoys)

    def through_sidecars(self, path: str, headers: Mapping[str, str] | None = None) -> None:
        status, body = http_get(f"http://127.0.0.1:{self.ports['to_backend']}{path}", headers)
        assert (status, body) == (200, "backend\n")

    def through_gateway(self, path: str) -> None:
        status, body = http_get(f"http://127.0.0.1:{self.ports['gateway']}{path}")
        assert (status, body) == (200, "backend\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("tracing")
    repo = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "backend_in", "to_backend", "gateway")}
    with Workload("backend") as backend, ZipkinReceiver() as zipkin, DatadogAgent() as datadog, OtlpReceiver() as otlp:
        cp = ControlPlaneProcess(repo.bare, root / "state")
        w = World(cp, repo, ports, backend, zipkin, datadog, otlp)
        first = repo.push(w.files(None), "three proxies, no tracing yet")
        cp.start()
        try:
            for name in NAMES:
                envoy = EnvoyProcess(cp, root / "envoys", name=name)
                w.envoys.append(envoy)
                envoy.start(wait=False)
            for envoy in w.envoys:
                wait_until(envoy.ready, 30, what=f"envoy {envoy.name} ready")
            cp.wait_applied(first, [f"default.{n}" for n in NAMES], timeout=30)
            wait_until(lambda: http_get(f"http://127.0.0.1:{ports['gateway']}/")[0] == 200, 15, what="the gateway routing to backend")
            yield w
        finally:
            for envoy in w.envoys:
                envoy.stop()
            cp.stop()


# -- Zipkin ------------------------------------------------------------------------------------------
def zipkin_by_path(world: World, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Zipkin spans whose request path starts with `prefix`, by path."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in world.zipkin.spans():
        url = str((span.get("tags") or {}).get("http.url", ""))
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
        if path.startswith(prefix):
            out[path].append(span)
    return out


def wait_for(what: str, check: Callable[[], bool], timeout: float = 25.0) -> None:
    wait_until(check, timeout, interval=0.2, what=what)


def test_zipkin_spans_of_one_request_through_two_sidecars_share_a_trace_and_carry_the_tags(world: World) -> None:
    world.apply(zipkin_policy(world.zipkin.url))
    paths = [f"/zipkin-all/{i}" for i in range(5)]
    for i, path in enumerate(paths):
        world.through_sidecars(path, {"x-tenant": "acme"} if i % 2 == 0 else None)
    # 100 % sampling: every request gives a client span (web-1's outbound) and a server span
    # (backend-1's inbound).
    wait_for(
        "a client and a server span for each request",
        lambda: all({"CLIENT", "SERVER"} <= {s.get("kind") for s in zipkin_by_path(world, p).get(p, [])} for p in paths),
    )
    spans = zipkin_by_path(world, "/zipkin-all/")
    trace_ids = set()
    for i, path in enumerate(paths):
        trace = {s["traceId"] for s in spans[path]}
        assert len(trace) == 1, f"{path}: spans of one request in several traces {trace}"
        trace_ids |= trace
        assert len(next(iter(trace))) == 32  # traceId128bit
        by_kind = {s["kind"]: s for s in spans[path]}
        assert by_kind["CLIENT"]["tags"]["node_id"] == "default.web-1"
        assert by_kind["SERVER"]["tags"]["node_id"] == "default.backend-1"
        # sharedSpanContext (Kuma's default): the server span continues the client's span id.
        assert by_kind["SERVER"]["id"] == by_kind["CLIENT"]["id"]
        for span in spans[path]:
            tags = span["tags"]
            assert tags["env"] == "e2e"
            assert tags["tenant"] == ("acme" if i % 2 == 0 else "none")
            assert (tags["kuma.mesh"], tags["kuma.zone"]) == ("default", "default")
    assert len(trace_ids) == len(paths), "each request is a trace of its own"


def test_zero_percent_sampling_sends_no_spans(world: World) -> None:
    world.apply(zipkin_policy(world.zipkin.url, overall=0))
    for i in range(10):
        world.through_sidecars(f"/zipkin-none/{i}")
    time.sleep(FLUSH)
    # The same collector, back at 100 %: the control request's spans arrive, the earlier ones never did.
    world.apply(zipkin_policy(world.zipkin.url))
    world.through_sidecars("/zipkin-control")
    wait_for("the control request's spans", lambda: len(zipkin_by_path(world, "/zipkin-control").get("/zipkin-control", [])) >= 2)
    assert zipkin_by_path(world, "/zipkin-none/") == {}


def test_builtin_gateway_spans_join_the_backend_trace(world: World) -> None:
    world.apply(zipkin_policy(world.zipkin.url))
    world.through_gateway("/via-gateway")

    def trace() -> dict[tuple[str, str], dict[str, Any]]:
        """The request's spans by (proxy, kind); the gateway's upstream span has no URL tag, so
        the trace is found by the gateway's server span."""
        roots = zipkin_by_path(world, "/via-gateway").get("/via-gateway", [])
        ids = {s["traceId"] for s in roots if s["localEndpoint"]["serviceName"] == "edge-1"}
        return {(s["localEndpoint"]["serviceName"], s["kind"]): s for s in world.zipkin.spans() if s["traceId"] in ids}

    wanted = {("edge-1", "SERVER"), ("edge-1", "CLIENT"), ("backend-1", "SERVER")}
    wait_for(f"spans {sorted(wanted)} of the gateway request", lambda: wanted <= set(trace()))
    got = trace()
    assert len({s["traceId"] for s in got.values()}) == 1
    # spawn_upstream_span: the gateway reports its upstream call as a child span, and the
    # backend's inbound continues that span (shared span context).
    assert got["edge-1", "CLIENT"]["parentId"] == got["edge-1", "SERVER"]["id"]
    assert got["backend-1", "SERVER"]["id"] == got["edge-1", "CLIENT"]["id"]
    assert got["edge-1", "CLIENT"]["tags"]["upstream_cluster"] == "backend"
    for key in (("edge-1", "SERVER"), ("backend-1", "SERVER")):
        assert (got[key]["tags"]["env"], got[key]["tags"]["kuma.mesh"]) == ("e2e", "default")


# -- OpenTelemetry ----------------------------------------------------------------------------------
def otlp_spans(otlp: OtlpReceiver) -> list[tuple[dict[str, Any], Any]]:
    """(resource attributes, Span) of every span received. xds-protos ships an old copy of the
    OpenTelemetry protos that may overwrite opentelemetry-proto's files depending on install
    order; the wire format is the same, only the scope field's name differs."""
    out = []
    for request in otlp.requests("traces"):
        for rs in request.resource_spans:
            scopes = rs.scope_spans if hasattr(rs, "scope_spans") else rs.instrumentation_library_spans
            out += [(attributes(rs.resource.attributes), span) for scope in scopes for span in scope.spans]
    return out


@pytest.mark.parametrize("via", ["endpoint", "backendRef"])
def test_opentelemetry_spans_reach_the_otlp_collector_sharing_a_trace(world: World, via: str) -> None:
    world.apply(otel_policy(world.otlp.endpoint if via == "endpoint" else None))
    paths = [f"/otel-{via}/{i}" for i in range(3)]
    for path in paths:
        world.through_sidecars(path, {"x-tenant": "acme"})

    def by_path() -> dict[str, list[tuple[str, dict[str, Any], Any]]]:
        out: dict[str, list[tuple[str, dict[str, Any], Any]]] = defaultdict(list)
        for resource, span in otlp_spans(world.otlp):
            attrs = attributes(span.attributes)
            url = str(attrs.get("http.url", ""))
            for path in paths:
                if url.endswith(path):
                    out[path].append((str(resource.get("service.name")), attrs, span))
        return out

    wait_for("web and backend spans for each request", lambda: all({"web", "backend"} <= {s for s, _, _ in by_path()[p]} for p in paths))
    got = by_path()
    for path in paths:
        assert len({span.trace_id for _, _, span in got[path]}) == 1, f"{path}: spans of one request in several traces"
        for _, attrs, _ in got[path]:
            assert (attrs["env"], attrs["tenant"], attrs["kuma.mesh"]) == ("e2e", "acme", "default")


# -- Datadog ----------------------------------------------------------------------------------------
def test_datadog_spans_reach_the_agent_with_split_service_names(world: World) -> None:
    world.apply(datadog_policy(world.datadog.url))
    paths = [f"/datadog/{i}" for i in range(3)]
    for path in paths:
        world.through_sidecars(path)

    def by_path() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for span in world.datadog.spans():
            url = str((span.get("meta") or {}).get("http.url", ""))
            for path in paths:
                if url.endswith(path):
                    out[path].append(span)
        return out

    wanted = {"web_OUTBOUND_backend", "backend_INBOUND"}
    wait_for(
        f"spans of services {wanted} for each request",
        lambda: all(wanted <= {s["service"] for s in by_path()[p]} for p in paths),
    )
    got = by_path()
    for path in paths:
        assert len({s["trace_id"] for s in got[path]}) == 1, f"{path}: spans of one request in several traces"
        for span in got[path]:
            assert (span["meta"]["env"], span["meta"]["tenant"], span["meta"]["kuma.mesh"]) == ("e2e", "none", "default")
