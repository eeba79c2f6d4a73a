"""Listeners for proxyless gRPC clients (grpcio's `xds:///<service>` resolver).

gRPC asks for a listener named after the target's authority and expects an HTTP connection
manager as its `api_listener`; Envoy would reject such a listener, so these resources are
served only to clients that ask for them by name.
"""

from __future__ import annotations

from functools import lru_cache

from envoy.config.listener.v3 import api_listener_pb2, listener_pb2

from reconciler.xds.generate import names
from reconciler.xds.generate.envoy import pack
from reconciler.xds.generate.http import http_connection_manager
from reconciler.xds.resources import LISTENER, XdsResource, resource

__all__ = ["api_listener"]


@lru_cache(maxsize=65536)
def api_listener(service_name: str, cluster_name: str) -> XdsResource:
    hcm = http_connection_manager(names.stat_prefix(service_name), names.outbound_route(cluster_name))
    listener = listener_pb2.Listener(name=service_name, api_listener=api_listener_pb2.ApiListener(api_listener=pack(hcm)))
    return resource(LISTENER, service_name, listener, by_name_only=True)
