"""MeshTrafficPermission → Envoy RBAC on inbound listeners (only when the mesh has mTLS).

Two forms, as in Kuma v2.14:

- `rules` (allow / allowWithShadowDeny / deny lists of SPIFFE-id or SNI matches): deny
  matches are checked first, then allow matches; anything else is denied.
  AllowWithShadowDeny allows and records a shadow denial.
- `from` (targetRef Mesh, MeshSubset, MeshService, MeshServiceSubset with an action): Kuma's
  subset rules. Every combination of the tags the entries mention (each present or absent)
  gets the action of the last entry, in policy order, whose tags it contains; clients in
  combinations that end on Allow (or AllowWithShadowDeny) are allowed. A client's tags are its
  certificate's SPIFFE id (`kuma.io/service`) and `kuma://<tag>/<value>` URIs.

`rules` win over `from` for an inbound that has both across policies. An inbound selected by
no policy is denied: with mTLS on and no permission, traffic is denied. RBAC goes on the TLS
filter chains only: a PERMISSIVE inbound's plaintext chain is not checked, as in Kuma.
HTTP inbounds get the HTTP RBAC filter (403), TCP ones the network RBAC filter (the
connection is closed).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import string_pb2

from reconciler.envoy_builders import pack
from reconciler.frozen import freeze
from reconciler.mesh.model import SERVICE_TAG, Dataplane, Inbound
from reconciler.policies.core.match import PolicyIndex, matched_policies
from reconciler.policies.core.plugin import HookContext, Plugin

__all__ = ["PLUGIN", "inbound_permissions", "configure_listener", "MAX_TAGS"]

MAX_TAGS = 12
"""Tags mentioned by `from` entries of one inbound; 2^n combinations are evaluated."""

_KIND = "MeshTrafficPermission"


def inbound_permissions(dp: Dataplane, inbound: Inbound, index: PolicyIndex, mtls: bool) -> Mapping[str, Any] | None:
    """What the RBAC of one inbound allows, as a frozen value (part of the ProxyView)."""
    if not mtls:
        return None
    key = (inbound.address, inbound.port)
    rules: list[Mapping[str, Any]] = []
    froms: list[tuple[tuple[tuple[str, str], ...], str]] = []
    for m in matched_policies(_KIND, dp, index):
        if key not in m.selection.inbounds:
            continue
        for rule in m.resource.spec.get("rules") or ():
            rules.append(rule.get("default") or {})
        for entry in m.resource.spec.get("from") or ():
            action = str((entry.get("default") or {}).get("action") or "")
            froms.append((_subset(entry.get("targetRef") or {}), action))
    if rules:
        conf: Mapping[str, Any] = freeze(
            {
                "form": "rules",
                "deny": [m for r in rules for m in (r.get("deny") or ())],
                "allow": [m for r in rules for m in list(r.get("allow") or ()) + list(r.get("allowWithShadowDeny") or ())],
                "shadowDeny": [m for r in rules for m in (r.get("allowWithShadowDeny") or ())],
            }
        )
        return conf
    allowed, shadow = _legacy(froms)
    legacy: Mapping[str, Any] = freeze({"form": "from", "allow": allowed, "shadowDeny": shadow})
    return legacy


def _subset(ref: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    kind = ref.get("kind", "Mesh")
    tags: dict[str, str] = {}
    if kind in ("MeshService", "MeshServiceSubset"):
        tags[SERVICE_TAG] = str(ref.get("name") or "")
    if kind in ("MeshSubset", "MeshServiceSubset"):
        tags.update({str(k): str(v) for k, v in (ref.get("tags") or {}).items()})
    return tuple(sorted(tags.items()))


def _legacy(items: Sequence[tuple[tuple[tuple[str, str], ...], str]]) -> tuple[list[Any], list[Any]]:
    """Allowed and shadow-denied client subsets, each a list of (tag, value, present)."""
    if not items:
        return [], []
    tags = sorted({t for subset, _ in items for t in subset})
    if len(tags) > MAX_TAGS:
        tags = tags[:MAX_TAGS]
    allowed, shadow = [], []
    for signs in itertools.product((True, False), repeat=len(tags)):
        present = {t for t, s in zip(tags, signs, strict=True) if s}
        keys = [k for k, _ in present]
        if len(keys) != len(set(keys)):
            continue  # one client cannot have two values of the same tag
        action = ""
        for subset, item_action in items:
            if all(t in present for t in subset):
                action = item_action
        if action in ("Allow", "AllowWithShadowDeny"):
            combo = [(k, v, s) for (k, v), s in zip(tags, signs, strict=True)]
            allowed.append(combo)
            if action == "AllowWithShadowDeny":
                shadow.append(combo)
    return allowed, shadow


# -- Envoy -------------------------------------------------------------------------------------
def _authenticated(matcher: string_pb2.StringMatcher) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=matcher))


def _tag_principal(mesh: str, key: str, value: str) -> rbac_pb2.Principal:
    if key == SERVICE_TAG:
        return _authenticated(string_pb2.StringMatcher(exact=f"spiffe://{mesh}/{value}"))
    return _authenticated(string_pb2.StringMatcher(exact=f"kuma://{key}/{value}"))


def _combo_principal(mesh: str, combo: Sequence[Sequence[Any]]) -> rbac_pb2.Principal:
    ids = []
    for key, value, present in combo:
        p = _tag_principal(mesh, key, value)
        ids.append(p if present else rbac_pb2.Principal(not_id=p))
    if not ids:
        return rbac_pb2.Principal(any=True)
    if len(ids) == 1:
        return ids[0]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def _match_principal(match: Mapping[str, Any]) -> rbac_pb2.Principal:
    ids = []
    spiffe = match.get("spiffeID")
    if spiffe:
        if spiffe.get("type") == "Prefix":
            ids.append(_authenticated(string_pb2.StringMatcher(prefix=str(spiffe.get("value")))))
        else:
            ids.append(_authenticated(string_pb2.StringMatcher(exact=str(spiffe.get("value")))))
    sni = match.get("sni")
    if sni:
        ids.append(rbac_pb2.Principal(requested_server_name=string_pb2.StringMatcher(exact=str(sni.get("value")))))
    if len(ids) == 1:
        return ids[0]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def _policy(principals: list[rbac_pb2.Principal]) -> rbac_pb2.Policy:
    return rbac_pb2.Policy(permissions=[rbac_pb2.Permission(any=True)], principals=principals)


def _rbac_rules(conf: Mapping[str, Any], mesh: str) -> list[tuple[rbac_pb2.RBAC, rbac_pb2.RBAC | None]]:
    """The RBAC filters of an inbound, in order: (rules, shadow rules) each."""
    out: list[tuple[rbac_pb2.RBAC, rbac_pb2.RBAC | None]] = []
    if conf["form"] == "rules":
        deny = [_match_principal(m) for m in conf["deny"]]
        if deny:
            out.append((rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY, policies={"MeshTrafficPermission-deny": _policy(deny)}), None))
        allow = [_match_principal(m) for m in conf["allow"]]
        shadow = [_match_principal(m) for m in conf["shadowDeny"]]
    else:
        allow = [_combo_principal(mesh, c) for c in conf["allow"]]
        shadow = [_combo_principal(mesh, c) for c in conf["shadowDeny"]]
    rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    if allow:
        rules.policies["MeshTrafficPermission"].CopyFrom(_policy(allow))
    shadow_rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY, policies={"MeshTrafficPermission": _policy(shadow)}) if shadow else None
    out.append((rules, shadow_rules))
    return out


def configure_listener(listener: listener_pb2.Listener, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """Put the RBAC filters first on every TLS filter chain of an inbound listener."""
    stat_prefix = "".join(c if c.isalnum() else "_" for c in listener.name) + "."
    filters = _rbac_rules(conf, ctx.mesh)
    for chain in listener.filter_chains:
        if chain.transport_socket.name != "envoy.transport_sockets.tls":
            continue
        hcm_filter = next((f for f in chain.filters if f.name == "envoy.filters.network.http_connection_manager"), None)
        if hcm_filter is not None:
            hcm = hcm_pb2.HttpConnectionManager()
            hcm_filter.typed_config.Unpack(hcm)
            rbac_filters = [
                hcm_pb2.HttpFilter(name="envoy.filters.http.rbac", typed_config=pack(http_rbac_pb2.RBAC(rules=r, shadow_rules=s)))
                for r, s in filters
            ]
            existing = list(hcm.http_filters)
            del hcm.http_filters[:]
            hcm.http_filters.extend(rbac_filters + existing)
            hcm_filter.typed_config.CopyFrom(pack(hcm))
        else:
            rbac_filters = [
                listener_components_pb2.Filter(
                    name="envoy.filters.network.rbac",
                    typed_config=pack(network_rbac_pb2.RBAC(stat_prefix=stat_prefix, rules=r, shadow_rules=s)),
                )
                for r, s in filters
            ]
            existing = list(chain.filters)
            del chain.filters[:]
            chain.filters.extend(rbac_filters + existing)


PLUGIN = Plugin(kind="MeshTrafficPermission", listener=configure_listener, inbound_conf=inbound_permissions, outbound=False)
"""RBAC filters on inbound listeners, from the per-client conf of `inbound_permissions`."""
