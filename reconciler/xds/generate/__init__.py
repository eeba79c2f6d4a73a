"""generate(ProxyView) → ProxyResources: the Envoy config of one sidecar, as Kuma builds it in
Universal mode without transparent proxying. Pure; pieces shared between proxies are memoized.
"""

from __future__ import annotations

from reconciler.mesh.model import HTTP_PROTOCOLS
from reconciler.mesh.proxy import ProxyView
from reconciler.xds.generate.api_listener import api_listener
from reconciler.xds.generate.gateway import gateway_resources
from reconciler.xds.generate.inbound import inbound_resources
from reconciler.xds.generate.outbound import outbound_context, outbound_resources
from reconciler.xds.generate.tls import secrets
from reconciler.xds.resources import ProxyResources, XdsResource

__all__ = ["generate"]


def generate(view: ProxyView) -> ProxyResources:
    items: list[XdsResource] = []
    mesh = view.dataplane.mesh
    mode = view.tls.mode if view.tls is not None else None
    for inbound in view.inbounds:
        items.extend(inbound_resources(inbound, mesh, mode, view.tls.trust_domains if view.tls is not None else ()))
    for outbound in view.outbounds:
        items.extend(outbound_resources(outbound, mesh, view.tls is not None))
        if outbound.protocol in HTTP_PROTOCOLS:
            items.append(api_listener(outbound_context(outbound, mesh), outbound.routes))
    if view.gateway is not None:
        items.extend(gateway_resources(view.gateway, mesh, view.tls is not None))
    if view.tls is not None:
        items.extend(secrets(view.tls))
    return ProxyResources.build(items)
