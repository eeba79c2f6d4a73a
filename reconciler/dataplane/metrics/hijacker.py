"""The metrics hijacker: what answers a Prometheus scrape of a proxy with MeshMetric.

As kuma-dp's (app/kuma-dp/pkg/dataplane/metrics/server.go with meshmetrics/component.go), it
listens on the Unix socket `kuma-mh-<dataplane>-<mesh>.sock` in the work directory, which the
Prometheus listener's `_kuma:metrics:hijacker` cluster points at, and polls the dynamic
config (`/meshmetric` on the `_kuma:dynamicconfig` listener) to learn what to collect. Each
scrape collects afresh (collect.py) in the format the scraper's Accept prefers. Until a
config arrives, or after the proxy's MeshMetric is gone, a scrape gets 503.

It runs in daemon threads beside Envoy (a SidecarService, reconciler/dataplane/services.py).
"""

from __future__ import annotations

import logging
import os
import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from reconciler.dataplane.dynconf import fetch_dynamic_config, unix_path
from reconciler.dataplane.metrics.collect import collect
from reconciler.dataplane.sidecar_context import SidecarContext
from reconciler.policies.meshmetric.envoy import DP_CONFIG_PATH, STATS_PATH, hijacker_socket

__all__ = ["MetricsHijacker", "POLL_INTERVAL", "ConfigWatch"]

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
"""How often the dynamic config is polled: Kuma's default
(KUMA_DATAPLANE_RUNTIME_DYNAMIC_CONFIGURATION_REFRESH_INTERVAL, 1s)."""


class ConfigWatch:
    """The latest `/meshmetric` document, kept fresh by a polling thread (ETag: a 304 costs
    nothing). Shared by the hijacker and, through `current()`, by anyone else who needs it."""

    def __init__(self, work_dir: Path, interval: float = POLL_INTERVAL, path: str = DP_CONFIG_PATH) -> None:
        self._work_dir = work_dir
        self._interval = interval
        self._path = path
        self._config: dict[str, Any] | None = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.changed = threading.Condition()

    def current(self) -> dict[str, Any] | None:
        return self._config

    def poll_once(self) -> None:
        config, etag = fetch_dynamic_config(self._work_dir, self._path, self._etag)
        if etag is not None and etag == self._etag:
            return  # unchanged
        if config != self._config:
            log.info("MeshMetric config %s", "updated" if config is not None else "gone")
        self._config, self._etag = config, etag
        with self.changed:
            self.changed.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="meshmetric-config", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a poll must never end the thread
                log.exception("polling the MeshMetric config failed")
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    hijacker: MetricsHijacker


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        hijacker = self.server.hijacker
        config = hijacker.watch.current() if hijacker.watch is not None else None
        if config is None or hijacker.ctx is None or not self.path.startswith(STATS_PATH):
            body, status, content_type = b"no MeshMetric configuration\n", 503 if config is None else 404, "text/plain"
        else:
            try:
                text, content_type = collect(config, hijacker.ctx, self.headers.get("Accept", ""))
                body, status = text.encode(), 200
            except Exception as e:  # a bug here must answer the scrape, not drop the connection
                log.exception("collecting metrics failed")
                body, status, content_type = f"collecting metrics failed: {e}\n".encode(), 500, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("hijacker: " + format, *args)

    def address_string(self) -> str:
        return "envoy"  # a Unix socket peer has no address


class MetricsHijacker:
    """The SidecarService: polls the MeshMetric config and serves scrapes on the socket."""

    name = "metrics-hijacker"

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        self._interval = interval
        self.ctx: SidecarContext | None = None
        self.watch: ConfigWatch | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: Path | None = None

    def start(self, ctx: SidecarContext) -> None:
        self.ctx = ctx
        self.watch = ConfigWatch(ctx.work_dir, self._interval)
        self.watch.start()
        self._socket = ctx.work_dir / hijacker_socket(ctx.name, ctx.mesh)
        self._socket.unlink(missing_ok=True)  # left by a previous run in this work dir
        try:
            with unix_path(self._socket) as name:
                server = _Server(name, _Handler)
        except OSError as e:
            log.warning("metrics hijacker cannot listen on %s: %s", self._socket, e)
            return
        os.chmod(self._socket, 0o600)
        server.hijacker = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics-hijacker", daemon=True)
        self._thread.start()

    def config(self) -> Mapping[str, Any] | None:
        return self.watch.current() if self.watch is not None else None

    def stop(self) -> None:
        try:
            if self.watch is not None:
                self.watch.stop()
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._socket is not None:
                self._socket.unlink(missing_ok=True)
        except Exception:  # stop never raises
            log.exception("stopping the metrics hijacker")
