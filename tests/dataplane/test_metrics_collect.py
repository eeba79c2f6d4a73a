"""One collection (reconciler/dataplane/metrics): the exposition text in and out, the
applications' metrics merged with Kuma's labels, sources that fail, and the hijacker socket."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.dataplane.dynconf import unix_path
from reconciler.dataplane.metrics.collect import collect, collect_families
from reconciler.dataplane.metrics.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, negotiate, parse, render
from reconciler.dataplane.metrics.hijacker import MetricsHijacker
from tests.e2e.harness import free_port


@dataclass(frozen=True)
class Ctx:
    work_dir: Path
    admin_address: str
    mesh: str = "default"
    name: str = "web-1"


APP_TEXT = '# HELP orders_total Orders.\n# TYPE orders_total counter\norders_total{shop="a"} 3\n# TYPE queue gauge\nqueue 2.5\n'
APP_OPENMETRICS = "# TYPE jobs counter\njobs_total 4\n# EOF\n"


@pytest.fixture
def apps() -> Iterator[dict[str, int]]:
    """Three applications on 127.0.0.1: Prometheus text, OpenMetrics, and one that fails."""
    servers = []

    def app(body: str, content_type: str, status: int = 200) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = body.encode() if self.path == "/metrics" else b""
                self.send_response(status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield {
        "text": app(APP_TEXT, "text/plain; version=0.0.4"),
        "openmetrics": app(APP_OPENMETRICS, "application/openmetrics-text; version=1.0.0"),
        "broken": app("oops", "text/plain", 500),
    }
    for server in servers:
        server.shutdown()
        server.server_close()


def config(apps: dict[str, int]) -> dict[str, Any]:
    return {
        "observability": {
            "metrics": {
                "applications": [{"path": "/metrics", "port": port, "address": ""} for port in apps.values()],
                "backends": [{"type": "Prometheus", "name": None}],
                "extraLabels": {"mesh": "default", "kuma.proxy_role": "sidecar", "dataplane": "web-1"},
            }
        }
    }


def test_applications_are_merged_and_labelled_and_a_failing_source_is_skipped(apps: dict[str, int], tmp_path: Path) -> None:
    # Nothing listens on the admin port: Envoy's part is empty, the applications still come.
    families = {f.name: f for f in collect_families(config(apps), Ctx(tmp_path, f"127.0.0.1:{free_port()}"), timeout=2)}
    assert sorted(families) == ["jobs_total", "orders_total", "queue"]
    orders = families["orders_total"].samples[0]
    assert orders.value == 3
    assert orders.labels == {
        "shop": "a",
        "mesh": "default",
        "kuma_proxy_role": "sidecar",  # Kuma's extra label, made a valid Prometheus name
        "dataplane": "web-1",
        "otel_scope_name": "kuma",
        "otel_scope_version": orders.labels["otel_scope_version"],
    }
    assert families["jobs_total"].type == "counter" and families["jobs_total"].samples[0].value == 4
    assert families["queue"].samples[0].value == 2.5


def test_collect_answers_in_the_format_asked(apps: dict[str, int], tmp_path: Path) -> None:
    ctx = Ctx(tmp_path, f"127.0.0.1:{free_port()}")
    text, content_type = collect(config(apps), ctx, "text/plain;version=0.0.4", timeout=2)
    assert content_type == TEXT_CONTENT_TYPE
    assert '# HELP orders_total Orders.\n# TYPE orders_total counter\norders_total{shop="a",' in text
    text, content_type = collect(config(apps), ctx, "application/openmetrics-text;version=1.0.0", timeout=2)
    assert content_type == OPENMETRICS_CONTENT_TYPE
    assert "# TYPE orders counter\n" in text and text.endswith("# EOF\n")


def test_text_round_trip_keeps_names_labels_and_values() -> None:
    text = (
        "# TYPE envoy_cluster_upstream_rq counter\n"
        'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="a\\"b\\\\c"} 5\n'
        "# TYPE h histogram\n"
        'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.75\nh_count 2\n'
        "untyped_one 1e-3 1700000000\n"
    )
    families = parse(text)
    assert [(f.name, f.type, len(f.samples)) for f in families] == [
        ("envoy_cluster_upstream_rq", "counter", 1),  # a counter without _total keeps its name
        ("h", "histogram", 4),
        ("untyped_one", "untyped", 1),
    ]
    assert families[0].samples[0].labels["envoy_cluster_name"] == 'a"b\\c'
    assert render(families) == text.replace(" 1700000000", "").replace("1e-3", "0.001").replace(
        "untyped_one", "# TYPE untyped_one untyped\nuntyped_one", 1
    )


@pytest.mark.parametrize("bad", ["metric{a=1} 2\n", 'metric{a="1" 2\n', "metric\n", "metric{} abc\n"])
def test_bad_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", TEXT_CONTENT_TYPE),
        ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", OPENMETRICS_CONTENT_TYPE),
        ("text/plain;version=0.0.4,application/openmetrics-text", TEXT_CONTENT_TYPE),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", TEXT_CONTENT_TYPE),
    ],
)
def test_negotiation(accept: str, expected: str) -> None:
    assert negotiate(accept) == expected


def get_over_unix(path: Path, url: str) -> tuple[int, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    with unix_path(path) as name:
        sock.connect(name)
    connection = http.client.HTTPConnection("localhost")
    connection.sock = sock
    connection.request("GET", url)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def test_the_hijacker_listens_on_kumas_socket_even_in_a_deep_work_dir_and_waits_for_a_config(tmp_path: Path) -> None:
    work = tmp_path / ("d" * 60) / ("e" * 60)  # longer than a Unix socket address may be
    work.mkdir(parents=True)
    hijacker = MetricsHijacker(interval=0.1)
    hijacker.start(Ctx(work, f"127.0.0.1:{free_port()}"))
    try:
        socket_path = work / "kuma-mh-web-1-default.sock"
        assert socket_path.exists()
        # No Envoy, so no dynamic config: not ready to answer a scrape.
        assert get_over_unix(socket_path, "/meshmetric")[0] == 503
    finally:
        hijacker.stop()
    assert not socket_path.exists()
