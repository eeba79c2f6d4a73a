"""Which Envoy metrics a MeshMetric publishes: `sidecar.profiles` (Kuma's kuma-dp profiles.go).

- `appendProfiles`: All (every family), Basic (Kuma's list below: the golden signals, what
  Kuma's dashboards use, DNS), None (nothing); several combine; none given means Basic.
- `exclude` then `include` selectors (Prefix, Exact, Contains, Regex on the family name);
  include wins over exclude.
- With Basic as the broadest profile, samples of Kuma's internal entities (a cluster, HTTP
  connection manager or listener label whose value starts with `_` or `system_`, or names
  `ads_cluster`, `access_log_sink`, `kuma_envoy_admin`, `kuma_metrics_hijacker`, the
  OpenTelemetry or tracing clusters) are dropped, and a family left empty goes with them.

Regex selectors use RE2 syntax in Kuma (Go's regexp, unanchored: a match anywhere in the
name); here Python's `re.search`, which agrees on the patterns validation lets through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.dataplane.metrics.exposition import Family

__all__ = ["BASIC_PROFILE", "ENTITY_LABELS", "profile_filter", "selector"]

Selector = Callable[[str], bool]

BASIC_PROFILE: tuple[tuple[str, str], ...] = (
    # golden signals
    ("Contains", "rq_time"),
    ("Contains", "cx_length_ms"),
    ("Contains", "cx_count"),
    ("Contains", "_rq"),
    ("Contains", "bytes"),
    ("Contains", "timeout"),
    ("Contains", "health_check"),
    ("Contains", "lb_healthy_panic"),
    ("Contains", "cx_destroy"),
    ("Exact", "envoy_cluster_membership_degraded"),
    ("Exact", "envoy_cluster_membership_healthy"),
    ("Contains", "error"),
    ("Contains", "fail"),
    ("Contains", "reset"),
    ("Contains", "eject"),
    ("Contains", "overflow"),
    ("Contains", "cancelled"),
    ("Contains", "max_duration_reached"),
    ("Contains", "no_cluster"),
    ("Contains", "no_route"),
    ("Contains", "no_filter_chain"),
    ("Contains", "reject"),
    ("Contains", "denied"),
    ("Contains", "days_until_first_cert_expiring"),
    # dashboards
    ("Prefix", "envoy_server"),
    ("Prefix", "envoy_control_plane"),
    ("Contains", "rbac"),
    ("Contains", "cx_active"),
    ("Contains", "cx_connect"),
    ("Exact", "envoy_cluster_ssl_handshake"),
    ("Exact", "envoy_cluster_membership_total"),
    ("Contains", "circuit_breakers"),
    ("Contains", "cx_total"),
    ("Contains", "ssl_handshake"),
    ("Contains", "ssl_context_update_by_sds"),
    # DNS
    ("Prefix", "envoy_dns_filter"),
    ("Prefix", "envoy_dns_cares"),
    ("Prefix", "kuma_dp_dns"),
)
"""Kuma v2.14.3's basicProfile, in its order: (selector type, match)."""

_BASIC_INTERNAL: tuple[tuple[str, str], ...] = (
    ("Prefix", "system_"),
    ("Prefix", "_"),
    ("Exact", "ads_cluster"),
    ("Exact", "access_log_sink"),
    ("Exact", "kuma_envoy_admin"),
    ("Exact", "kuma_metrics_hijacker"),
    ("Prefix", "_kuma:metrics:opentelemetry"),
    ("Prefix", "tracing"),
)
"""Kuma's basicProfileLabels: values of ENTITY_LABELS that name internal entities."""

ENTITY_LABELS = frozenset({"envoy_cluster_name", "envoy_http_conn_manager_prefix", "envoy_listener_address"})

_ORDER = {"All": 0, "Basic": 1, "None": 2}


def selector(kind: str, match: str) -> Selector:
    """A MeshMetric selector as a predicate on names (unknown types and bad regexes select
    nothing, as Kuma's)."""
    if kind == "Contains":
        return lambda value: match in value
    if kind == "Prefix":
        return lambda value: value.startswith(match)
    if kind == "Exact":
        return lambda value: value == match
    if kind == "Regex":
        try:
            pattern = re.compile(match)
        except re.error:
            return lambda value: False
        return lambda value: pattern.search(value) is not None
    return lambda value: False


def _selectors(items: Sequence[tuple[str, str]]) -> list[Selector]:
    return [selector(k, m) for k, m in items]


_BASIC = _selectors(BASIC_PROFILE)
_BASIC_LABELS = _selectors(_BASIC_INTERNAL)


def _listed(items: Any) -> list[tuple[str, str]]:
    return [(str(i.get("type", "")), str(i.get("match", ""))) for i in items or () if isinstance(i, Mapping)]


def profile_filter(sidecar: Mapping[str, Any] | None) -> Callable[[list[Family]], list[Family]]:
    """The families a MeshMetric `sidecar` section keeps, as a function of Envoy's families."""
    profiles: Mapping[str, Any] = (sidecar or {}).get("profiles") or {}
    names = [str(p.get("name")) for p in profiles.get("appendProfiles") or () if isinstance(p, Mapping)]
    if names:
        names.sort(key=lambda n: _ORDER.get(n, len(_ORDER)))
        chosen: list[Selector] = []
        for name in names:
            if name == "All":
                chosen.append(lambda value: True)
            elif name == "Basic":
                chosen += _BASIC
        # The profiles nest (All ⊃ Basic ⊃ None): the broadest decides the label cleaning.
        broadest = names[0]
    else:
        chosen, broadest = list(_BASIC), "Basic"
    exclude = _selectors(_listed(profiles.get("exclude")))
    include = _selectors(_listed(profiles.get("include")))

    def keep(families: list[Family]) -> list[Family]:
        out: list[Family] = []
        for family in families:
            kept = any(s(family.name) for s in chosen)
            if any(s(family.name) for s in exclude):
                kept = False
            if any(s(family.name) for s in include):
                kept = True
            if broadest == "Basic":
                samples = [s for s in family.samples if not _internal(s.labels)]
                if not samples:
                    kept = False
                family = Family(family.name, family.type, family.help, samples)
            if kept:
                out.append(family)
        return out

    return keep


def _internal(labels: Mapping[str, str]) -> bool:
    return any(name in ENTITY_LABELS and any(s(value) for s in _BASIC_LABELS) for name, value in labels.items())
