"""What the demo adds for observability: where the example's telemetry goes on one machine.

example-repo/ turns on access logs (MeshAccessLog, File backend), a Prometheus endpoint on
every sidecar (MeshMetric) and tracing (MeshTrace, Zipkin). On the demo machine that means:

- access-log paths under DEMO_LOG_DIR in the example are moved into the demo's state
  directory when the repository is seeded, so each demo writes its own files;
- the Prometheus targets (file_sd) are computed from the MeshMetric policies each proxy gets,
  and written with a prometheus.yml that scrapes them and the control plane;
- a tiny Zipkin-compatible receiver runs at each Zipkin URL on 127.0.0.1 that a MeshTrace
  names, appending every span it receives to a JSON-lines file.

`where_to_look` says all of this in the demo's instructions.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from reconciler.mesh.model import Dataplane, build_mesh_model
from reconciler.model import Snapshot
from reconciler.policies.core.match import single_conf
from reconciler.views.proxy import policy_indexes

__all__ = [
    "DEMO_LOG_DIR",
    "PrometheusTarget",
    "ZipkinReceiver",
    "access_log_files",
    "move_log_paths",
    "prometheus_config",
    "prometheus_targets",
    "start_telemetry",
    "where_to_look",
    "zipkin_ports",
]

DEMO_LOG_DIR = "/tmp/mesh-reconciler-demo"
"""Where example-repo's File access logs write; the demo moves this directory into its state."""

DEFAULT_PROMETHEUS_PORT, DEFAULT_PROMETHEUS_PATH = 5670, "/metrics"  # MeshMetric's defaults


@dataclass(frozen=True, slots=True)
class PrometheusTarget:
    """One proxy's MeshMetric Prometheus endpoint and the labels the dashboards group by."""

    dataplane: str
    mesh: str
    service: str
    address: str
    port: int
    path: str
    role: str
    """`sidecar` or `gateway`, as Kuma's MeshMetric labels say."""

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}{self.path}"

    def file_sd(self) -> dict[str, Any]:
        labels = {"mesh": self.mesh, "kuma_io_service": self.service, "dataplane": self.dataplane, "kuma_proxy_role": self.role}
        if self.path != DEFAULT_PROMETHEUS_PATH:
            labels["__metrics_path__"] = self.path
        return {"targets": [f"{self.address}:{self.port}"], "labels": labels}


def move_log_paths(text: str, log_dir: Path) -> str:
    """`text` with the example's access-log directory replaced by `log_dir`."""
    return text.replace(DEMO_LOG_DIR + "/", f"{log_dir}/")


def _service(dp: Dataplane) -> str:
    if dp.gateway:
        return str((dp.gateway.get("tags") or {}).get("kuma.io/service", dp.name))
    return dp.inbounds[0].service if dp.inbounds else dp.name


def prometheus_targets(snapshot: Snapshot) -> list[PrometheusTarget]:
    """Every proxy's Prometheus endpoints, from the MeshMetric conf it gets (Kuma's merge:
    a more specific policy's `backends` replace the mesh-wide ones)."""
    model = build_mesh_model(snapshot)
    indexes = policy_indexes(model)
    out = []
    for dp in sorted(model.dataplanes.values(), key=lambda d: (d.mesh, d.name)):
        conf = single_conf("MeshMetric", dp, indexes[dp.mesh])
        for backend in (conf.value.get("backends") or ()) if conf else ():
            if backend.get("type") != "Prometheus":
                continue
            prometheus = backend.get("prometheus") or {}
            port = int(prometheus.get("port") or DEFAULT_PROMETHEUS_PORT)
            path = str(prometheus.get("path") or DEFAULT_PROMETHEUS_PATH)
            role = "gateway" if dp.gateway else "sidecar"
            out.append(PrometheusTarget(dp.name, dp.mesh, _service(dp), dp.address, port, path, role))
    return out


def prometheus_config(api_port: int, targets_file: Path) -> str:
    """deploy/prometheus/prometheus.yml's two jobs, for this demo's API port and targets file."""
    config = {
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [
            {"job_name": "mesh-reconciler-control-plane", "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}]},
            {
                "job_name": "kuma-dataplanes",
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
            },
        ],
    }
    return "# Written by `reconciler demo` for its own ports (deploy/prometheus/prometheus.yml explains the jobs).\n" + yaml.safe_dump(
        config, sort_keys=False
    )


def _zipkin_urls(snapshot: Snapshot) -> Iterator[str]:
    for trace in snapshot.of_type("MeshTrace"):
        for backend in (trace.spec.get("default") or {}).get("backends") or ():
            url = (backend.get("zipkin") or {}).get("url") if backend.get("type") == "Zipkin" else None
            if isinstance(url, str):
                yield url


def zipkin_ports(snapshot: Snapshot) -> list[int]:
    """The ports of the Zipkin URLs on 127.0.0.1 that a MeshTrace sends to: the demo listens there."""
    ports = set()
    for url in _zipkin_urls(snapshot):
        parts = urlsplit(url)
        if parts.hostname == "127.0.0.1" and parts.port:
            ports.add(parts.port)
    return sorted(ports)


def access_log_files(snapshot: Snapshot) -> list[str]:
    """Every File backend path of the MeshAccessLogs, in the order of the policies."""
    paths: list[str] = []

    def confs(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for section in ("from", "to", "rules"):
            for entry in spec.get(section) or ():
                yield entry.get("default") or {}

    for log in sorted(snapshot.of_type("MeshAccessLog"), key=lambda r: r.name):
        for conf in confs(log.spec):
            for backend in conf.get("backends") or ():
                path = (backend.get("file") or {}).get("path") if backend.get("type") == "File" else None
                if isinstance(path, str) and path not in paths:
                    paths.append(path)
    return paths


class ZipkinReceiver:
    """A Zipkin v2 collector endpoint on 127.0.0.1: `POST /api/v2/spans` with a JSON list of
    spans; each span is appended to `spans_file` as one JSON line. `GET /` says how many."""

    def __init__(self, port: int, spans_file: Path) -> None:
        self.spans_file = spans_file
        self.received = 0
        self._lock = threading.Lock()
        spans_file.parent.mkdir(parents=True, exist_ok=True)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self._body()
                try:
                    spans = json.loads(body)
                except ValueError:
                    spans = None
                if not isinstance(spans, list):
                    self._answer(400, b"expected a JSON list of Zipkin v2 spans\n")
                    return
                receiver.add(spans)
                self._answer(202, b"")

            def _body(self) -> bytes:
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()  # the empty line after the last chunk
                return body

            def do_GET(self) -> None:
                self._answer(200, f"{receiver.received} spans received, in {receiver.spans_file}\n".encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    def add(self, spans: list[Any]) -> None:
        # One write of whole lines: whoever reads the file meanwhile (tail -f) sees no half batch.
        text = "".join(json.dumps(span, sort_keys=True) + "\n" for span in spans)
        with self._lock, self.spans_file.open("a", encoding="utf-8", buffering=1 << 20) as out:
            out.write(text)
            self.received += len(spans)

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def where_to_look(
    snapshot: Snapshot, state: Path, targets: list[PrometheusTarget], prometheus_yml: Path, receivers: list[ZipkinReceiver]
) -> list[str]:
    """The instructions' lines for access logs, metrics and traces."""
    lines = ["  where to look (example-repo's MeshAccessLog, MeshMetric and MeshTrace):"]
    for path in access_log_files(snapshot):
        if path in ("/dev/stdout", "/dev/stderr"):
            lines.append(f"    access log   {path} of the proxies it selects: their logs, {state / 'envoy'}/<name>.log")
        else:
            lines.append(f"    access log   {path}")
    for t in targets:
        lines.append(f"    metrics      curl {t.url}   ({t.dataplane})")
    if targets:
        lines.append(f"    Prometheus   prometheus --config.file={prometheus_yml}   (dashboards: deploy/grafana/)")
    for r in receivers:
        port = r.server.server_address[1]
        lines.append(f"    traces       Zipkin receiver http://127.0.0.1:{port}/api/v2/spans → {r.spans_file}")
    return lines


def start_telemetry(snapshot: Snapshot, api_port: int, state: Path) -> tuple[list[ZipkinReceiver], list[str]]:
    """Zipkin receivers for the MeshTraces, a Prometheus configuration for the MeshMetric
    endpoints (in `state`/prometheus), and the instructions' lines about all of it."""
    (state / "logs").mkdir(exist_ok=True)
    receivers = []
    try:
        for port in zipkin_ports(snapshot):
            receivers.append(ZipkinReceiver(port, state / "traces" / f"zipkin-{port}.jsonl"))
            receivers[-1].start()
        targets = prometheus_targets(snapshot)
        prometheus = state / "prometheus"
        prometheus.mkdir(exist_ok=True)
        targets_file = prometheus / "dataplanes.json"
        targets_file.write_text(json.dumps([t.file_sd() for t in targets], indent=2) + "\n")
        config = prometheus / "prometheus.yml"
        config.write_text(prometheus_config(api_port, targets_file))
    except BaseException:
        for r in receivers:
            r.stop()
        raise
    return receivers, where_to_look(snapshot, state, targets, config, receivers)
