"""The builtin gateway as the data plane sees it: listeners, virtual hosts, routes, backends.

A Dataplane with `networking.gateway.type: BUILTIN` is configured by the MeshGateway whose
`selectors` match its gateway tags (`PolicyIndex.gateway_of`). Following Kuma v2.14
(pkg/plugins/runtime/gateway, pkg/plugins/policies/meshhttproute/plugin/v1alpha1/gateway*.go):

- `conf.listeners` on one port make one Envoy listener `<gateway>:<PROTOCOL>:<port>` on the
  dataplane's `networking.address`; each listener contributes its `hostname` (default `*`),
  its tags (the dataplane's gateway tags, then the MeshGateway's `tags`, then the listener's
  `tags`) and its `tls`.
- A MeshHTTPRoute (HTTP, HTTPS) or MeshTCPRoute (TCP, TLS) attaches to a listener when its
  top-level targetRef is `{kind: MeshGateway, name: <gateway>}` and the targetRef's `tags`
  (if any) match the listener's tags. Only `to` entries of kind Mesh count.
- HTTP: every `to` entry contributes its `rules` to each of its `hostnames` (none: `*`).
  Rules for one hostname are merged by `matches` as Kuma merges them (equal matches merge
  their `default`s, the later policy winning). A listener hostname gets one virtual host per
  route hostname it intersects with (`*.example.com` and `shop.example.com` give
  `shop.example.com`; a route without hostnames gives the listener's own hostname); a virtual
  host takes the rules of every route hostname that covers it, most specific hostnames first,
  then orders them most specific match first. A listener hostname no route attaches to gets a
  virtual host answering 404, as Kuma's gateway does for hosts without routes.
- TCP / TLS: the last `to` rule of the most specific MeshTCPRoute gives the weighted backends.
- Other policies reach a listener by its tags (views/gateway_policies.py): route and backend
  confs are computed from the policies reaching that listener, and `GatewayListener.confs`
  holds the listener-level ones (MeshFaultInjection, MeshRateLimit, MeshAccessLog).
- TLS termination certificates come from data sources (a mesh `Secret`, `inline`,
  `inlineString`, `file`): the PEM private key and the certificate chain, as Kuma reads them.

Everything here is a frozen value: two equal GatewayViews generate equal Envoy config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cmp_to_key
from typing import Any

from reconciler.ca.provider import spiffe_id
from reconciler.frozen import FrozenDict, freeze
from reconciler.mesh.gateway_certificates import GatewayCertificate, gateway_certificate
from reconciler.mesh.hostnames import WILDCARD, exactness, hostname_contains, hostnames_match, sort_hostnames
from reconciler.mesh.model import SERVICE_TAG, Dataplane, MeshModel
from reconciler.mesh.routing import BackendCluster, RouteView, WeightedCluster, resolve_backend
from reconciler.model import Resource
from reconciler.policies.core.gateway_listeners import listener_tags
from reconciler.policies.core.match import Destination, PolicyIndex, outbound_conf, policy_sort_key, route_confs
from reconciler.policies.core.merge import merge_confs
from reconciler.policies.core.route_rules import CATCH_ALL, compare_match
from reconciler.policies.plugins import plugins
from reconciler.views.gateway_policies import LISTENER_KINDS, listener_cluster, listener_confs, listener_index

__all__ = [
    "VirtualHost",
    "ListenerHostname",
    "GatewayListener",
    "GatewayView",
    "gateway_view",
]

Confs = Mapping[str, Mapping[str, Any]]
HTTP_LISTENERS = ("HTTP", "HTTPS")
TCP_LISTENERS = ("TCP", "TLS")


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """One Envoy virtual host: the domain it answers and its routes (empty: 404)."""

    hostname: str
    routes: tuple[RouteView, ...]


@dataclass(frozen=True, slots=True)
class ListenerHostname:
    """One `conf.listeners` item: a hostname on a port, with its TLS and what it routes to."""

    hostname: str
    tags: Mapping[str, str]
    tls_mode: str = ""
    """"" (plain), TERMINATE or PASSTHROUGH."""
    certificates: tuple[GatewayCertificate, ...] = ()
    hosts: tuple[VirtualHost, ...] = ()
    """HTTP / HTTPS: the virtual hosts."""
    tcp: tuple[WeightedCluster, ...] = ()
    """TCP / TLS: the weighted backends."""


@dataclass(frozen=True, slots=True)
class GatewayListener:
    """One Envoy listener: every `conf.listeners` item on one port."""

    name: str
    """`<gateway>:<PROTOCOL>:<port>` (Kuma's name)."""
    port: int
    protocol: str
    hostnames: tuple[ListenerHostname, ...]
    connection_limit: int = 0
    confs: Confs = FrozenDict()
    """Listener-level confs (views/gateway_policies.py LISTENER_KINDS): MeshFaultInjection and
    MeshRateLimit hook the listener's filters; MeshAccessLog's is here for its plugin to come."""

    def route_name(self, hostname: ListenerHostname) -> str:
        """RDS name: HTTP shares `<listener>:*`; HTTPS has one per listener hostname."""
        return f"{self.name}:{hostname.hostname}" if self.protocol == "HTTPS" else f"{self.name}:*"


@dataclass(frozen=True, slots=True)
class GatewayView:
    """What the Envoy config of one builtin gateway proxy depends on."""

    name: str
    """The MeshGateway."""
    service: str
    """The gateway dataplane's `kuma.io/service` (its stat prefix and its identity)."""
    address: str
    listeners: tuple[GatewayListener, ...]
    backends: tuple[BackendCluster, ...] = ()
    """Every cluster the routes send or mirror to, by name."""


# -- routes attached to a listener ---------------------------------------------------------------
def _tags_match(selector: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    return all(tags.get(str(k)) == str(v) or (v == WILDCARD and k in tags) for k, v in selector.items())


def _attached(kind: str, gateway: str, tags: Mapping[str, str], index: PolicyIndex) -> list[Resource]:
    """Routes of `kind` targeting the gateway whose targetRef tags match a listener's tags,
    least specific first (the engine's policy order)."""
    out = []
    for policy in index.of(kind):
        ref = policy.spec.get("targetRef") or {}
        if ref.get("kind") == "MeshGateway" and ref.get("name") == gateway and _tags_match(ref.get("tags") or {}, tags):
            out.append(policy)
    return sorted(out, key=policy_sort_key)


@dataclass(slots=True)
class _Rule:
    matches: tuple[Mapping[str, Any], ...]
    defaults: list[Mapping[str, Any]]
    origin: str


def _rules_by_hostname(routes: list[Resource]) -> dict[str, dict[str, _Rule]]:
    """Route hostname → rules merged by their matches (Kuma's mergeValues / mergeValuesByKey)."""
    out: dict[str, dict[str, _Rule]] = {}
    for route in routes:
        for entry in route.spec.get("to") or ():
            if (entry.get("targetRef") or {}).get("kind", "Mesh") != "Mesh":
                continue
            for hostname in entry.get("hostnames") or (WILDCARD,):
                merged = out.setdefault(str(hostname), {})
                for rule in entry.get("rules") or ():
                    matches = tuple(rule.get("matches") or ())
                    key = json.dumps(matches, sort_keys=True, default=list)
                    default = rule.get("default") or {}
                    if key in merged:
                        # The later policy wins field by field and takes the rule's place.
                        previous = merged.pop(key)
                        merged[key] = _Rule(matches, previous.defaults + [default], route.name)
                    else:
                        merged[key] = _Rule(matches, [default], route.name)
    return out


@dataclass(frozen=True, slots=True)
class _Entry:
    """A route before its backends are resolved."""

    match: Mapping[str, Any]
    filters: tuple[Mapping[str, Any], ...]
    backend_refs: tuple[Mapping[str, Any], ...]
    origin: str


def _entries(rules: list[_Rule]) -> list[_Entry]:
    out: list[_Entry] = []
    for rule in rules:
        conf = merge_confs(rule.defaults)
        for match in rule.matches or (CATCH_ALL,):
            if match.get("path") is None:
                # Envoy needs one path matcher: a match without a path matches any path.
                match = {**match, "path": CATCH_ALL["path"]}
            entry = _Entry(freeze(match), tuple(conf.get("filters") or ()), tuple(conf.get("backendRefs") or ()), rule.origin)
            if entry not in out:
                out.append(entry)

    # Stable: on equal specificity, rules of more exact route hostnames stay first.
    def compare(a: _Entry, b: _Entry) -> int:
        return compare_match(a.match, b.match)

    return sorted(out, key=cmp_to_key(compare))


def _virtual_hosts(
    listener_hostnames: Sequence[str], rules: Mapping[str, Mapping[str, _Rule]]
) -> dict[str, list[tuple[str, list[_Entry]]]]:
    """Per listener hostname: (virtual host domain, entries), as Kuma's sortRulesToHosts.

    Listener hostnames are taken most exact first; a domain already served by a more exact
    listener hostname on the same port is not repeated (all HTTP hosts of a port share one
    route configuration, and Envoy refuses a domain twice).
    """
    out: dict[str, list[tuple[str, list[_Entry]]]] = {}
    observed: list[str] = []
    rule_hostnames = list(rules)
    for listener in sort_hostnames(listener_hostnames):
        domains: list[str] = []
        for rule_hostname in rule_hostnames:
            if not hostnames_match(listener, rule_hostname):
                continue
            domain = listener if hostname_contains(rule_hostname, listener) else rule_hostname
            if domain not in domains:
                domains.append(domain)
        hosts: list[tuple[str, list[_Entry]]] = []
        for domain in domains:
            if any(hostname_contains(seen, domain) for seen in observed):
                continue
            covering = [h for h in rule_hostnames if hostnames_match(domain, h) and not (h in domains and not hostname_contains(h, domain))]
            merged: list[_Rule] = []
            for h in sort_hostnames(covering):
                merged.extend(rules[h].values())
            hosts.append((domain, _entries(merged)))
        if not hosts and not any(hostname_contains(seen, listener) for seen in observed):
            hosts.append((listener, []))
        out[listener] = hosts
        observed.append(listener)
    return out


def _tcp_refs(routes: list[Resource]) -> tuple[Mapping[str, Any], ...]:
    refs: tuple[Mapping[str, Any], ...] = ()
    for route in routes:
        for entry in route.spec.get("to") or ():
            if (entry.get("targetRef") or {}).get("kind", "Mesh") != "Mesh":
                continue
            for rule in entry.get("rules") or ():
                refs = tuple((rule.get("default") or {}).get("backendRefs") or ())
    return refs


# -- the view ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Item:
    port: int
    protocol: str
    hostname: str
    tags: Mapping[str, str]
    tls: Mapping[str, Any]
    connection_limit: int


def _items(dp: Dataplane, gateway: Resource) -> list[_Item]:
    dp_tags = (dp.gateway or {}).get("tags") or {}
    out = []
    for raw in (gateway.spec.get("conf") or {}).get("listeners") or ():
        protocol = str(raw.get("protocol") or "")
        if protocol not in HTTP_LISTENERS + TCP_LISTENERS:
            continue
        tags = FrozenDict(listener_tags(dp_tags, gateway, raw))
        limit = int(((raw.get("resources") or {}).get("connectionLimit")) or 0)
        out.append(
            _Item(int(raw.get("port") or 0), protocol, str(raw.get("hostname") or WILDCARD), tags, raw.get("tls") or FrozenDict(), limit)
        )
    return out


def gateway_view(
    model: MeshModel,
    index: PolicyIndex,
    dp: Dataplane,
    ids: Mapping[tuple[str, str], tuple[str, ...]],
) -> GatewayView | None:
    """The gateway a builtin gateway dataplane serves (None: not a gateway, or no MeshGateway)."""
    gateway = index.gateway_of(dp)
    if gateway is None:
        return None
    mesh = dp.mesh
    service = str(((dp.gateway or {}).get("tags") or {}).get(SERVICE_TAG) or dp.name)
    kinds = [p.kind for p in plugins() if p.outbound]
    overrides = {p.kind: p.outbound_conf for p in plugins() if p.outbound_conf is not None}
    secrets = model.secrets_of(mesh)
    externals = model.external_specs(mesh)
    backends: dict[str, BackendCluster] = {}
    route_kinds = [*kinds, *(k for k in LISTENER_KINDS if k not in kinds)]
    scoped = index
    """The policies reaching the listener being built (listener_index); the closures below read it."""

    def confs_for(name: str | Destination) -> Confs:
        dest = name if isinstance(name, Destination) else Destination(name)
        out = {}
        for kind in kinds:
            if kind in overrides:
                value = overrides[kind](dp, dest, scoped)
            else:
                conf = outbound_conf(kind, dp, dest, scoped)
                value = conf.value if conf is not None else None
            if value is not None:
                out[kind] = value
        return FrozenDict(out)

    def identities_for(name: str, endpoints: tuple[Any, ...]) -> tuple[str, ...]:
        return ids.get((mesh, name)) or (spiffe_id(mesh, name),)

    def cluster_for(ref: Mapping[str, Any]) -> str:
        name, extra = resolve_backend(model, mesh, ref, confs_for, identities_for, externals)
        if extra is not None:
            if extra.external is None:
                # The identities the cluster's endpoints present (a MeshService port's too).
                extra = _with_identities(extra, ids.get((mesh, name)))
            else:
                extra = replace(extra, confs=confs_for(Destination(extra.service_name, "MeshExternalService")))
            name = listener_cluster(backends, extra)
        return name

    def route_view(entry: _Entry) -> RouteView | None:
        clusters = tuple(WeightedCluster(cluster_for(ref), int(ref.get("weight", 1))) for ref in entry.backend_refs)
        redirect = any(f.get("type") == "RequestRedirect" for f in entry.filters)
        if not clusters and not redirect:
            return None
        mirrors = tuple(
            (cluster_for(f["requestMirror"]["backendRef"]), float(f["requestMirror"].get("percentage", 100) or 100))
            for f in entry.filters
            if f.get("type") == "RequestMirror" and (f.get("requestMirror") or {}).get("backendRef")
        )
        first = next(
            (ref for ref in entry.backend_refs if int(ref.get("weight", 1)) > 0), entry.backend_refs[0] if entry.backend_refs else None
        )
        confs: Confs = confs_for(str(first.get("name") or "")) if first is not None else FrozenDict()
        if first is not None and entry.origin:
            per_route = _route_confs(route_kinds, dp, Destination(str(first.get("name") or "")), scoped).get(entry.origin)
            if per_route:
                confs = FrozenDict({k: merge_confs([confs.get(k) or {}, per_route.get(k) or {}]) for k in {*confs, *per_route}})
        return RouteView(entry.origin or "default", entry.match, entry.filters, clusters, confs, entry.origin, mirrors)

    by_port: dict[int, list[_Item]] = {}
    for item in _items(dp, gateway):
        by_port.setdefault(item.port, []).append(item)
    listeners = []
    for port in sorted(by_port):
        items = by_port[port]
        protocol = items[0].protocol
        if any(i.protocol != protocol for i in items):
            continue  # validation refuses this; never serve a half-merged port
        hostnames = []
        scoped = listener_index(index, dp, (dp.address, port))
        if protocol in HTTP_LISTENERS:
            rules_per_item = {i.hostname: _rules_by_hostname(_attached("MeshHTTPRoute", gateway.name, i.tags, index)) for i in items}
            for item in sorted(items, key=lambda i: exactness(i.hostname)):
                hosts = _virtual_hosts([i.hostname for i in items], rules_per_item[item.hostname])[item.hostname]
                virtual_hosts = tuple(
                    VirtualHost(domain, tuple(r for r in map(route_view, entries) if r is not None)) for domain, entries in hosts
                )
                hostnames.append(_hostname(item, secrets, virtual_hosts=virtual_hosts))
        else:
            for item in sorted(items, key=lambda i: exactness(i.hostname)):
                refs = _tcp_refs(_attached("MeshTCPRoute", gateway.name, item.tags, index))
                split = tuple(WeightedCluster(cluster_for(ref), int(ref.get("weight", 1))) for ref in refs)
                hostnames.append(_hostname(item, secrets, tcp=split))
        limit = max((i.connection_limit for i in items), default=0)
        confs = listener_confs(dp, scoped)
        listeners.append(GatewayListener(f"{gateway.name}:{protocol}:{port}", port, protocol, tuple(hostnames), limit, confs))
    return GatewayView(gateway.name, service, dp.address, tuple(listeners), tuple(backends[n] for n in sorted(backends)))


def _hostname(
    item: _Item, secrets: Mapping[str, Resource], *, virtual_hosts: tuple[VirtualHost, ...] = (), tcp: tuple[WeightedCluster, ...] = ()
) -> ListenerHostname:
    mode = str(item.tls.get("mode") or "") if item.protocol in ("HTTPS", "TLS") else ""
    certs: list[GatewayCertificate] = []
    if mode == "TERMINATE":
        for source in item.tls.get("certificates") or ():
            cert = gateway_certificate(source, item.hostname, secrets)
            if cert is not None and all(c.name != cert.name for c in certs):
                certs.append(cert)
    return ListenerHostname(item.hostname, item.tags, mode, tuple(certs), virtual_hosts, tcp)


def _with_identities(backend: BackendCluster, identities: tuple[str, ...] | None) -> BackendCluster:
    return replace(backend, identities=identities) if identities else backend


def _route_confs(kinds: list[str], dp: Dataplane, dest: Destination, index: PolicyIndex) -> dict[str, dict[str, Any]]:
    """Per MeshHTTPRoute name: confs of policies whose top-level targetRef is that route."""
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        for route, conf in route_confs(kind, dp, dest, index).items():
            out.setdefault(route, {})[kind] = conf.value
    return out
