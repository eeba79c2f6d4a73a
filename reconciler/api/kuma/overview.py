"""Kuma's DataplaneOverview: a Dataplane with its DataplaneInsight, built from what the xDS
server records of each proxy (reconciler/store.py ProxyStatus).

The insight has one ADS subscription per proxy that ever connected: when it connected (and
when its last stream closed, once it did), and per xDS type Kuma's DiscoveryServiceStats:
responses sent, acknowledged and rejected (`cds`, `eds`, `lds`, `rds`, and `total` over every
type, SDS included). Envoy answers every response with one ACK or NACK, so the ACKed count is
the responses sent less the NACKed ones and the one still unanswered, if any. A proxy is
connected while its ADS stream is open (Kuma: a subscription without `disconnectTime`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.api.kuma.shapes import rfc3339
from reconciler.model import Resource
from reconciler.store import ProxyStatus, TypeStatus
from reconciler.xds_types import SHORT_NAMES

__all__ = ["insight_json", "stats_json"]


def stats_json(types: list[TypeStatus]) -> dict[str, int]:
    sent = sum(t.pushes for t in types)
    rejected = sum(t.nacks for t in types)
    pending = sum(1 for t in types if t.sent_version != t.acked_version and t.nacked_revision != t.sent_revision)
    return {"responsesSent": sent, "responsesAcknowledged": max(0, sent - rejected - pending), "responsesRejected": rejected}


def _subscription(proxy: ProxyStatus, instance_id: str) -> dict[str, Any]:
    by_short = {SHORT_NAMES.get(url, url).lower(): t for url, t in proxy.types.items()}
    status: dict[str, Any] = {"total": stats_json(list(proxy.types.values()))}
    for short in ("cds", "eds", "lds", "rds"):
        status[short] = stats_json([by_short[short]] if short in by_short else [])
    out: dict[str, Any] = {"id": f"{proxy.node_id}@{proxy.connected_at:.6f}", "controlPlaneInstanceId": instance_id}
    out["connectTime"] = rfc3339(proxy.connected_at)
    if not proxy.connected and proxy.disconnected_at:
        out["disconnectTime"] = rfc3339(proxy.disconnected_at)
    out["status"] = status
    out["generation"] = max(proxy.generation, 0)
    return out


def _mtls(mesh: Resource | None) -> dict[str, Any] | None:
    mtls = mesh.spec.get("mtls") if mesh is not None else None
    backend = mtls.get("enabledBackend") if isinstance(mtls, Mapping) else None
    if not backend:
        return None
    return {"issuedBackend": backend, "supportedBackends": [backend]}


def insight_json(proxy: ProxyStatus | None, mesh: Resource | None, instance_id: str) -> dict[str, Any]:
    """Kuma's DataplaneInsight of a proxy (None: it never connected)."""
    if proxy is None or not proxy.connected_at:
        return {"subscriptions": []}
    out: dict[str, Any] = {"subscriptions": [_subscription(proxy, instance_id)]}
    mtls = _mtls(mesh) if proxy.connected else None
    if mtls is not None:
        out["mTLS"] = mtls
    return out
