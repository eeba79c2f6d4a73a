"""One collection of a proxy's metrics, as kuma-dp's MeshMetric producer makes it.

Given the `/meshmetric` document (reconciler/policies/meshmetric/envoy.py `dp_config`):

- Envoy's stats from its admin endpoint, `/stats?format=prometheus&text_readouts` plus
  `usedonly` unless `sidecar.includeUnused` (so only metrics that ever changed), filtered by
  `sidecar.profiles` (profiles.py);
- each `applications` entry's own endpoint, `http://<address or the proxy's>:<port><path>`,
  unfiltered;
- every sample labelled with `extraLabels` (names made Prometheus-safe: `kuma.proxy_role` →
  `kuma_proxy_role`) and with the OpenTelemetry scope Kuma's exporter adds
  (`otel_scope_name="kuma"`, `otel_scope_version`) unless the sample carries its own scope.

A source that fails (refused, timed out, not 200, unparsable) contributes nothing and the
others are still published, as in kuma-dp. `collect_families` is the structured result (the
OpenTelemetry pusher turns it into OTLP data points); `collect` renders it for a scraper.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler import __version__
from reconciler.dataplane.metrics.exposition import Family, negotiate, parse, render, with_labels
from reconciler.dataplane.metrics.profiles import profile_filter
from reconciler.dataplane.sidecar_context import SidecarContext

__all__ = [
    "collect",
    "collect_families",
    "metrics_section",
    "envoy_stats_url",
    "SCRAPE_TIMEOUT",
    "DEFAULT_APPLICATION_ADDRESS",
]

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT = 5.0
"""Per source, as kuma-dp's HTTP clients."""
DEFAULT_APPLICATION_ADDRESS = "127.0.0.1"
"""An application without `address`: kuma-dp uses the dataplane's networking address, which
run-dataplane's services are not told; the loopback address reaches a workload beside the
proxy on Universal."""
SCOPE_NAME = "kuma"


def metrics_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """`observability.metrics` of a `/meshmetric` document (or the section itself)."""
    section = (config.get("observability") or {}).get("metrics") if "observability" in config else config
    return section if isinstance(section, Mapping) else {}


def envoy_stats_url(admin_address: str, sidecar: Mapping[str, Any] | None) -> str:
    query = "format=prometheus&text_readouts"
    if not (sidecar or {}).get("includeUnused"):
        query += "&usedonly"
    return f"http://{admin_address}/stats?{query}"


def _fetch(url: str, timeout: float) -> tuple[str, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return response.read().decode("utf-8", "replace"), response.headers.get("Content-Type", "")
    except (urllib.error.URLError, OSError, ValueError) as e:
        log.debug("metrics source %s failed: %s", url, e)
        return None


def _scrape(url: str, timeout: float) -> list[Family]:
    fetched = _fetch(url, timeout)
    if fetched is None:
        return []
    try:
        return parse(*fetched)
    except ValueError as e:
        log.info("metrics from %s do not parse: %s", url, e)
        return []


def collect_families(
    config: Mapping[str, Any], ctx: SidecarContext, *, timeout: float = SCRAPE_TIMEOUT, default_address: str = DEFAULT_APPLICATION_ADDRESS
) -> list[Family]:
    """Envoy's filtered families, then each application's, all labelled (see the module
    docstring). Sources are scraped in parallel."""
    metrics = metrics_section(config)
    sidecar = metrics.get("sidecar")
    urls = [envoy_stats_url(ctx.admin_address, sidecar)]
    for app in metrics.get("applications") or ():
        address = app.get("address") or default_address
        host = f"[{address}]" if ":" in address else address
        path = app.get("path") or "/metrics"
        urls.append(f"http://{host}:{app.get('port')}{path}")
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        results = list(pool.map(lambda u: _scrape(u, timeout), urls))
    families = profile_filter(sidecar)(results[0])
    for app_families in results[1:]:
        families += app_families
    extra = dict(metrics.get("extraLabels") or {})
    out: list[Family] = []
    for family in with_labels(families, extra):
        for sample in family.samples:
            if "otel_scope_name" not in sample.labels:
                sample.labels["otel_scope_name"] = SCOPE_NAME
                sample.labels["otel_scope_version"] = __version__
        out.append(family)
    return out


def collect(
    config: Mapping[str, Any],
    ctx: SidecarContext,
    accept: str = "",
    *,
    timeout: float = SCRAPE_TIMEOUT,
    default_address: str = DEFAULT_APPLICATION_ADDRESS,
) -> tuple[str, str]:
    """(exposition text, its Content-Type) for a scraper that sent `accept`."""
    content_type = negotiate(accept)
    families = collect_families(config, ctx, timeout=timeout, default_address=default_address)
    return render(families, content_type), content_type
