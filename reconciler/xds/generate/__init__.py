"""generate(ProxyView) → ProxyResources: the Envoy config of one sidecar, as Kuma builds it in
Universal mode without transparent proxying. Pure; pieces shared between proxies are memoized.
A proxy in the compact outbound shape gets its outbound listeners folded into one
(reconciler/xds/generate/compact.py).
"""

from __future__ import annotations

from reconciler.mesh.model import HTTP_PROTOCOLS
from reconciler.views.proxy import ProxyView
from reconciler.xds.generate import names
from reconciler.xds.generate.api_listener import api_listener
from reconciler.xds.generate.compact import compact_outbound_listeners
from reconciler.xds.generate.gateway import gateway_resources
from reconciler.xds.generate.inbound import inbound_resources
from reconciler.xds.generate.outbound import outbound_context, outbound_resources
from reconciler.xds.generate.tls import secrets
from reconciler.xds.resources import LISTENER, ProxyResources, XdsResource

__all__ = ["generate"]


def generate(view: ProxyView) -> ProxyResources:
    items: list[XdsResource] = []
    mesh = view.dataplane.mesh
    mode = view.tls.mode if view.tls is not None else None
    for inbound in view.inbounds:
        items.extend(inbound_resources(inbound, mesh, mode, view.tls.trust_domains if view.tls is not None else ()))
    outbound_listeners: list[XdsResource] = []
    for outbound in view.outbounds:
        own = names.outbound_listener(outbound.outbound.address, outbound.outbound.port)
        for r in outbound_resources(outbound, mesh, view.tls is not None):
            (outbound_listeners if r.type_url == LISTENER and r.name == own else items).append(r)
        if outbound.protocol in HTTP_PROTOCOLS:
            items.append(api_listener(outbound_context(outbound, mesh), outbound.routes))
    if view.shape.shape == "compact":
        outbound_listeners = compact_outbound_listeners(outbound_listeners)
    items.extend(outbound_listeners)
    if view.gateway is not None:
        items.extend(gateway_resources(view.gateway, mesh, view.tls is not None))
    if view.tls is not None:
        items.extend(secrets(view.tls))
    return ProxyResources.build(items)
