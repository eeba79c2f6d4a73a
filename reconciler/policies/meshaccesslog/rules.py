"""MeshAccessLog's inbound rules: every rule logs on its own (Kuma v2.14.3, meshaccesslog/plugin/xds/rules.go).

Unlike most kinds, Kuma does not merge a MeshAccessLog's inbound entries into one conf: each
`rules` entry (one per `matches` item) and each `from` entry (Kuma's IsFromAsRules: a `from`
entry is a rule matching every client) is a rule of its own, and every backend of every rule
whose match holds writes an entry ("access logging fans out"). Rules are ordered as Kuma's
inbound rules: policies least specific first, then by match (a SPIFFE ID match first, Exact
before Prefix, then SNI, then catch-all).

A rule with a match gets Envoy's CEL access-log filter, as Kuma's MatchToCEL:
`connection.uri_san_peer_certificate == "<id>"` (or `.startsWith("<prefix>")`) and
`connection.requested_server_name == "<sni>"`, joined by `&&`. Without mTLS no client shows a
certificate, so such a rule logs nothing, as in Kuma.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2

from reconciler.envoy_builders import pack
from reconciler.frozen import freeze
from reconciler.mesh.model import Dataplane, Inbound
from reconciler.policies.core.match import PolicyIndex, matched_policies

__all__ = ["inbound_conf", "gateway_rules", "cel_expression", "cel_filter", "KIND", "GATEWAY_RULES"]

KIND = "MeshAccessLog"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
GATEWAY_RULES = "inboundRules"
"""The key of a builtin gateway listener's conf holding its inbound rules, beside the merged
`to` conf's `backends` (views/gateway_policies.py)."""


def _match_order(rule: Mapping[str, Any]) -> tuple[bool, int, bool]:
    match = rule.get("match") or {}
    spiffe, sni = match.get("spiffeID"), match.get("sni")
    score = {"Exact": 2, "Prefix": 1}.get((spiffe or {}).get("type", ""), 0)
    return (spiffe is None, -score, sni is None)


def _rules_of(dp: Dataplane, index: PolicyIndex, key: tuple[str, int] | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for matched in matched_policies(KIND, dp, index):
        if key is not None and key not in matched.selection.inbounds:
            continue
        spec = matched.resource.spec
        entries = spec.get("rules") or ()
        if entries:
            for rule in entries:
                backends = (rule.get("default") or {}).get("backends") or ()
                for match in rule.get("matches") or (None,):  # one rule per match, as Kuma expands them
                    rules.append({"match": match, "backends": backends})
        else:
            for entry in spec.get("from") or ():
                rules.append({"match": None, "backends": (entry.get("default") or {}).get("backends") or ()})
    rules.sort(key=_match_order)  # stable: policy order within the same kind of match
    return rules


def inbound_conf(dp: Dataplane, inbound: Inbound, index: PolicyIndex, mtls: bool = False) -> Mapping[str, Any] | None:
    """`{"rules": [{"match": <match or None>, "backends": [...]}, ...]}` for one inbound, None
    when no MeshAccessLog has a rule for it."""
    rules = _rules_of(dp, index, (inbound.address, inbound.port))
    return freeze({"rules": rules}) if rules else None


def gateway_rules(dp: Dataplane, index: PolicyIndex) -> tuple[Mapping[str, Any], ...]:
    """The inbound rules of a builtin gateway listener (Kuma's applyToGateway logs a listener
    from them too, as inbound traffic); `index` holds only the policies reaching the listener."""
    return tuple(freeze(rule) for rule in _rules_of(dp, index, None))


def _quote(value: Any) -> str:
    # Go's strconv.Quote for what a SPIFFE ID or server name can hold.
    return json.dumps(str(value), ensure_ascii=False)


def cel_expression(match: Mapping[str, Any] | None) -> str:
    """Kuma's MatchToCEL; "" for no match (every client)."""
    if not match:
        return ""
    parts = []
    spiffe = match.get("spiffeID")
    if spiffe:
        if spiffe.get("type") == "Exact":
            parts.append(f"connection.uri_san_peer_certificate == {_quote(spiffe.get('value', ''))}")
        elif spiffe.get("type") == "Prefix":
            parts.append(f"connection.uri_san_peer_certificate.startsWith({_quote(spiffe.get('value', ''))})")
    sni = match.get("sni")
    if sni and sni.get("type") == "Exact":
        parts.append(f"connection.requested_server_name == {_quote(sni.get('value', ''))}")
    return " && ".join(parts)


def cel_filter(expression: str) -> accesslog_pb2.AccessLogFilter:
    return accesslog_pb2.AccessLogFilter(
        extension_filter=accesslog_pb2.ExtensionFilter(name=CEL_FILTER, typed_config=pack(cel_pb2.ExpressionFilter(expression=expression)))
    )
