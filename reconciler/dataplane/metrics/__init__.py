"""Metrics beside Envoy, as kuma-dp's: the MeshMetric hijacker that answers Prometheus scrapes
(hijacker.py), one collection of Envoy's and the applications' metrics (collect.py), Kuma's
profile filters (profiles.py) and the exposition text in and out (exposition.py).

The OpenTelemetry pusher (otlp.py, pusher.py) builds on `collect_families` and `ConfigWatch`.
"""

from reconciler.dataplane.metrics.collect import collect, collect_families
from reconciler.dataplane.metrics.exposition import Family, Sample
from reconciler.dataplane.metrics.hijacker import POLL_INTERVAL, ConfigWatch, MetricsHijacker

__all__ = ["collect", "collect_families", "Family", "Sample", "ConfigWatch", "MetricsHijacker", "POLL_INTERVAL"]
