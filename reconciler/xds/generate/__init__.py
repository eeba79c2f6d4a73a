"""generate(ProxyView) → ProxyResources: the Envoy config of one sidecar, as Kuma builds it in
Universal mode. Pure; pieces shared between proxies are memoized. A transparent proxy also gets
Kuma's passthrough listeners and clusters, its inbound and outbound listeners do not bind
(reconciler/xds/generate/transparent.py), and its sidecar's DNS records (dns.py).
A proxy in the compact outbound shape gets its outbound listeners folded into one
(reconciler/xds/generate/compact.py). A MeshProxyPatch selecting the proxy is applied last, on
the finished resources (reconciler/policies/meshproxypatch/envoy.py): patched resources are new
objects, so the memoized pieces other proxies share are never changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from reconciler.frozen import freeze
from reconciler.mesh.model import HTTP_PROTOCOLS
from reconciler.model import Resource
from reconciler.policies.core.plugin import OtelBackend, ProxyFacts
from reconciler.policies.meshpassthrough.envoy import KIND as PASSTHROUGH
from reconciler.policies.meshproxypatch.envoy import KIND as PROXY_PATCH
from reconciler.policies.meshproxypatch.envoy import Generated, apply_modifications
from reconciler.policies.plugins import plugins
from reconciler.views.proxy import ProxyView
from reconciler.xds.generate import names
from reconciler.xds.generate.api_listener import outbound_api_listener
from reconciler.xds.generate.compact import compact_outbound_listeners
from reconciler.xds.generate.dns import dns_body, with_dns_route
from reconciler.xds.generate.gateway import gateway_resources
from reconciler.xds.generate.inbound import inbound_resources
from reconciler.xds.generate.outbound import outbound_resources
from reconciler.xds.generate.probes import probe_listener
from reconciler.xds.generate.tls import secrets
from reconciler.xds.generate.transparent import from_passthrough_source, no_bind, transparent_resources
from reconciler.xds.resources import CLUSTER, LISTENER, ProxyResources, XdsResource, resource

__all__ = ["generate"]

log = logging.getLogger(__name__)


def generate(view: ProxyView) -> ProxyResources:
    items: list[XdsResource] = []
    mesh = view.dataplane.mesh
    mode = view.tls.mode if view.tls is not None else None
    facts = proxy_facts(view)
    redirect = view.dataplane.redirect if view.gateway is None else None
    for inbound in view.inbounds:
        items.extend(inbound_resources(inbound, mesh, mode, view.tls.trust_domains if view.tls is not None else (), facts))
    if redirect is not None:
        items = [no_bind(r) if r.type_url == LISTENER else from_passthrough_source(r) for r in items]
    inbound_count = len(items)
    outbound_listeners: list[XdsResource] = []
    for outbound in view.outbounds:
        own = names.outbound_listener(outbound.outbound.address, outbound.outbound.port)
        for r in outbound_resources(outbound, mesh, view.tls is not None, facts):
            (outbound_listeners if r.type_url == LISTENER and r.name == own else items).append(r)
        if outbound.protocol in HTTP_PROTOCOLS:
            items.append(outbound_api_listener(outbound, mesh, facts))
    if view.shape.shape == "compact":
        outbound_listeners = compact_outbound_listeners(outbound_listeners)
    if redirect is not None:
        outbound_listeners = [no_bind(r) for r in outbound_listeners]
    items.extend(outbound_listeners)
    transparent: list[XdsResource] = []
    passthrough_problem = None
    if redirect is not None:
        made, passthrough_problem = transparent_resources(redirect, view.mesh.resource.spec, view.confs.get(PASSTHROUGH))
        transparent = list(made)
    items.extend(transparent)
    gateway = list(gateway_resources(view.gateway, mesh, view.tls is not None, facts)) if view.gateway is not None else []
    items.extend(gateway)
    items.extend(_proxy_resources(view, facts))
    if redirect is not None:
        items = with_dns_route(items, dns_body(view.dns, mesh, view.dataplane.labels))
    probes = probe_listener(view.dataplane, frozenset(r.name for r in items if r.type_url == CLUSTER))
    if probes is not None:
        items.append(probes)
    if view.tls is not None:
        items.extend(secrets(view.tls))
    patch = view.confs.get(PROXY_PATCH)
    if patch:
        # Kuma's origins: what the inbound, outbound and gateway generators made (secrets are not patched).
        origins = (
            {id(r): "inbound" for r in items[:inbound_count]}
            | {id(r): "gateway" for r in gateway}
            | {id(r): "transparent" for r in transparent}
        )
        tags = {names.outbound_listener(o.outbound.address, o.outbound.port): o.outbound.tags for o in view.outbounds}
        items, problems = _patched(items, origins, tags, patch, view.node_id)
        patched = tuple(f"MeshProxyPatch: {p}" for p in problems)
        return replace(ProxyResources.build(items), problems=(*((passthrough_problem,) if passthrough_problem else ()), *patched))
    if passthrough_problem:
        return replace(ProxyResources.build(items), problems=(passthrough_problem,))
    return ProxyResources.build(items)


def proxy_facts(view: ProxyView) -> ProxyFacts:
    dp = view.dataplane
    service = view.gateway.service if view.gateway is not None else next((i.service for i in dp.inbounds if i.service), "")
    return ProxyFacts(
        dp.mesh, dp.name, service, dp.address, gateway=view.gateway is not None, otel_backends=_otel_backends(view.mesh.otel_backends)
    )


@lru_cache(maxsize=256)
def _otel_backends(resources: tuple[Resource, ...]) -> tuple[OtelBackend, ...]:
    """A mesh's MeshOpenTelemetryBackends by name, frozen once per mesh, not once per proxy."""
    return tuple(OtelBackend(r.name, freeze(r.labels or {}), freeze(r.spec or {})) for r in sorted(resources, key=lambda r: r.name))


def _proxy_resources(view: ProxyView, facts: ProxyFacts) -> list[XdsResource]:
    """What plugins add to the proxy as a whole, from every conf of their kind on it."""
    out: list[XdsResource] = []
    places: list[Mapping[str, Mapping[str, Any]]] | None = None
    for plugin in plugins():
        if plugin.proxy_resources is None:
            continue
        if places is None:  # the same for every plugin: gathered once per proxy
            places = _conf_places(view)
        confs = _every_conf(places, plugin.kind)
        if confs:
            for type_url, name, message in plugin.proxy_resources(view.confs.get(plugin.kind), confs, facts):
                out.append(resource(type_url, name, message))
    return out


def _conf_places(view: ProxyView) -> list[Mapping[str, Mapping[str, Any]]]:
    """Where confs sit on the proxy: proxy-wide first, then inbounds, outbounds (and their
    routes and backends) and gateway listeners and routes."""
    places: list[Mapping[str, Mapping[str, Any]]] = [view.confs]
    places += [i.confs for i in view.inbounds]
    for o in view.outbounds:
        places += [o.confs, *o.route_confs.values(), *(b.confs for b in o.backends)]
    if view.gateway is not None:
        for listener in view.gateway.listeners:
            places.append(listener.confs)
            places += [r.confs for h in listener.hostnames for host in h.hosts for r in host.routes]
    return places


def _every_conf(places: list[Mapping[str, Mapping[str, Any]]], kind: str) -> list[Mapping[str, Any]]:
    """Each distinct conf of `kind` in `places`, in their order."""
    out: list[Mapping[str, Any]] = []
    for confs in places:
        conf = confs.get(kind)
        if conf is not None and conf not in out:
            out.append(conf)
    return out


def _patched(
    items: list[XdsResource], origins: Mapping[int, str], tags: Mapping[str, Mapping[str, str]], conf: Mapping[str, Any], node: str
) -> tuple[list[XdsResource], list[str]]:
    """`items` after the MeshProxyPatch modifications (only clusters and listeners are patched),
    and the modifications that could not be applied."""
    patchable = [r for r in items if r.type_url in (CLUSTER, LISTENER)]
    by_key = {(r.type_url, r.name): r for r in patchable}
    generated = [
        Generated(r.type_url, r.name, origins.get(id(r), "outbound"), r.message, tags=tags.get(r.name) if r.type_url == LISTENER else None)
        for r in patchable
    ]
    result, problems = apply_modifications(conf, generated)
    for problem in problems:
        log.warning("MeshProxyPatch on %s: %s", node, problem)
    out = [r for r in items if r.type_url not in (CLUSTER, LISTENER)]
    for g in result:
        original = by_key.get((g.type_url, g.name))
        if not g.changed and original is not None:
            out.append(original)
        else:
            by_name_only = original.by_name_only if original is not None else False
            out.append(resource(g.type_url, g.name, g.message, by_name_only=by_name_only))
    return out, [str(p) for p in problems]
