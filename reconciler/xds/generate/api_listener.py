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
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import HookContext
from reconciler.xds.generate.http import inline_http_connection_manager
from reconciler.xds.generate.outbound import outbound_route_config
from reconciler.xds.resources import LISTENER, XdsResource, resource

__all__ = ["api_listener"]


@lru_cache(maxsize=65536)
def api_listener(ctx: HookContext, routes: tuple[RouteView, ...]) -> XdsResource:
    """The outbound's routes inline, as in the sidecar's listener, so gRPC needs no RDS either."""
    hcm = inline_http_connection_manager(names.stat_prefix(ctx.service), outbound_route_config(ctx.cluster, ctx.service, ctx, routes))
    listener = listener_pb2.Listener(name=ctx.cluster, api_listener=api_listener_pb2.ApiListener(api_listener=pack(hcm)))
    return resource(LISTENER, ctx.cluster, listener, by_name_only=True)
