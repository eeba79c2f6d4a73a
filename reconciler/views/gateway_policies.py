"""The policies of one builtin gateway listener: what reaches it, and its listener-level confs.

Kuma v2.14 applies policies to a builtin gateway per listener (`GatewayRules.ToRules.ByListener`,
keyed by the dataplane's address and the listener's port): a policy whose top-level targetRef is
`{kind: MeshGateway, name, tags}` reaches only the listeners whose tags match `tags`
(policies/core/gateway_listeners.py); a Mesh, MeshSubset or MeshService targetRef that selects
the gateway proxy reaches all of them. So the route confs (MeshTimeout, MeshRetry), the backend
cluster confs (MeshCircuitBreaker, …) and the listener confs below are computed per listener,
from a policy index holding only the policies that reach that listener.

Listener confs: MeshFaultInjection, MeshRateLimit and MeshAccessLog configure the gateway's
listener itself, from their `to` entries of kind Mesh (Kuma's `MeshElement`), merged in policy
order. Policies whose top-level targetRef is a MeshHTTPRoute are route confs, not listener confs.
Proxy-wide kinds (MeshTrace) give every listener the proxy's merged top-level `default`.
MeshAccessLog's conf also carries the listener's inbound rules (`rules`/`from`, Kuma logs them too).

Backend clusters: listeners reaching a backend with different confs get different clusters
(listener_cluster), so a cluster policy aimed at one listener's tags stays on that listener.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from typing import Any

from reconciler.frozen import FrozenDict, freeze
from reconciler.mesh.model import Dataplane
from reconciler.mesh.routing import BackendCluster
from reconciler.model import Resource
from reconciler.policies.core.match import PolicyIndex, matched_policies, selects, single_conf
from reconciler.policies.core.merge import merge_confs
from reconciler.policies.meshaccesslog.rules import GATEWAY_RULES, gateway_rules
from reconciler.policies.meshaccesslog.rules import KIND as ACCESS_LOG
from reconciler.policies.plugins import plugins

__all__ = ["LISTENER_KINDS", "listener_index", "listener_confs", "listener_cluster"]

LISTENER_KINDS = ("MeshFaultInjection", "MeshRateLimit", "MeshAccessLog")
"""Kinds whose gateway conf belongs to a listener (Kuma's ByListener + MeshElement)."""
_ROUTE_KINDS = ("MeshHTTPRoute", "MeshTCPRoute")


def listener_index(index: PolicyIndex, dp: Dataplane, key: tuple[str, int]) -> PolicyIndex:
    """`index` without the policies that select only other listeners of the gateway `dp`.

    Routes stay (they attach by their own targetRef tags, and policies may name them); every
    other field of the index is kept, with fresh memos."""
    by_kind: dict[str, tuple[Resource, ...]] = {}
    for kind, policies in index.by_kind.items():
        by_kind[kind] = tuple(
            p for p in policies if kind in _ROUTE_KINDS or not (sel := selects(p, dp, index)).inbounds or key in sel.inbounds
        )
    if all(len(by_kind[k]) == len(v) for k, v in index.by_kind.items()):
        return index
    return replace(index, by_kind=by_kind, _matched={}, _views={})


def listener_confs(dp: Dataplane, index: PolicyIndex) -> Mapping[str, Mapping[str, Any]]:
    """Per kind of LISTENER_KINDS: the merged `to` (kind Mesh) `default` reaching the listener
    (`index` is the listener's own, from listener_index)."""
    out: dict[str, Any] = {}
    for kind in LISTENER_KINDS:
        defaults = [
            entry["default"]
            for matched in matched_policies(kind, dp, index)
            if matched.selection.whole_proxy and (matched.resource.spec.get("targetRef") or {}).get("kind") != "MeshHTTPRoute"
            for entry in matched.resource.spec.get("to") or ()
            if (entry.get("targetRef") or {}).get("kind", "Mesh") == "Mesh" and entry.get("default") is not None
        ]
        if defaults:
            out[kind] = merge_confs(defaults)
    # Proxy-wide kinds (MeshTrace) configure every gateway listener with the proxy's `default`.
    for plugin in plugins():
        if plugin.proxy_wide and (wide := single_conf(plugin.kind, dp, index)) is not None:
            out[plugin.kind] = wide.value
    if inbound_rules := gateway_rules(dp, index):  # MeshAccessLog logs its inbound rules there too
        out[ACCESS_LOG] = {**(out.get(ACCESS_LOG) or {}), GATEWAY_RULES: inbound_rules}
    return FrozenDict({k: freeze(v) for k, v in out.items()})


def listener_cluster(backends: MutableMapping[str, BackendCluster], backend: BackendCluster) -> str:
    """Register a listener's backend cluster; returns the name its routes use.

    Listeners that reach a backend with the same policy confs share its cluster. One reached
    with other confs (a MeshCircuitBreaker aimed at one listener's tags) gets its own cluster,
    `<name>-<hash of its confs>`, as Kuma gives each listener's tags their own gateway cluster."""
    known = backends.get(backend.name)
    if known is not None and _cluster_confs(known.confs) != _cluster_confs(backend.confs):
        digest = hashlib.sha256(json.dumps(_cluster_confs(backend.confs), sort_keys=True, default=list).encode()).hexdigest()[:16]
        backend = replace(backend, name=f"{backend.name}-{digest}")
    backends.setdefault(backend.name, backend)
    return backend.name


def _cluster_confs(confs: Mapping[str, Any]) -> dict[str, Any]:
    """The confs that shape a cluster or its endpoints (route-only kinds such as MeshRetry do not)."""
    kinds = {p.kind for p in plugins() if p.cluster is not None or p.load_assignment is not None}
    return {k: v for k, v in confs.items() if k in kinds}
