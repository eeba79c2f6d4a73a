"""Listeners for proxyless gRPC clients (grpcio's `xds:///<service>` resolver).

gRPC asks for a listener named after the target's authority and expects an HTTP connection
manager as its `api_listener`; Envoy would reject such a listener, so these resources are
served only to clients that ask for them by name.

The name is the outbound's destination as Kuma names it (its cluster name): the service for a
`kuma.io/service` outbound (`xds:///backend`), `<mesh>_<name>___msvc_<port>` for a MeshService
port (`xds:///default_backend___msvc_80`), so two ports of one MeshService, which may route
differently, are two listeners.
"""

from __future__ import annotations

from functools import lru_cache

from envoy.config.listener.v3 import api_listener_pb2, listener_pb2

from reconciler.envoy_builders import pack
from reconciler.mesh.routing import RouteView
from reconciler.views.proxy import OutboundView
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import HookContext, ProxyFacts
from reconciler.xds.generate.http import inline_http_connection_manager
from reconciler.xds.generate.outbound import outbound_context, outbound_route_config
from reconciler.xds.resources import LISTENER, XdsResource, resource

__all__ = ["api_listener", "outbound_api_listener"]

_memo: dict[tuple[int, str], tuple[OutboundView, XdsResource]] = {}


def outbound_api_listener(view: OutboundView, mesh: str, facts: ProxyFacts | None = None) -> XdsResource:
    """The API listener of one outbound. Proxies sharing a view object share it, as they share
    the outbound's other resources (outbound.py `outbound_resources`): making its hook context
    and hashing it again for each of 10,000 proxies was a tenth of generating their config."""
    key = (id(view), mesh)
    hit = _memo.get(key)
    if hit is not None and hit[0] is view:
        return hit[1]
    out = api_listener(outbound_context(view, mesh, facts), view.routes)
    if len(_memo) > 100_000:
        _memo.clear()
    _memo[key] = (view, out)
    return out


@lru_cache(maxsize=65536)
def api_listener(ctx: HookContext, routes: tuple[RouteView, ...]) -> XdsResource:
    """The outbound's routes inline, as in the sidecar's listener, so gRPC needs no RDS either."""
    hcm = inline_http_connection_manager(names.stat_prefix(ctx.service), outbound_route_config(ctx.cluster, ctx.service, ctx, routes))
    listener = listener_pb2.Listener(name=ctx.cluster, api_listener=api_listener_pb2.ApiListener(api_listener=pack(hcm)))
    return resource(LISTENER, ctx.cluster, listener, by_name_only=True)
