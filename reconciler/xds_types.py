"""The five Envoy resource types the control plane serves: their type URLs, the order an ADS
stream sends them in, and the short names (CDS, EDS, ...) people read in logs, metrics and the API.

A leaf: the store and the API name types without depending on the xDS generator or server.
`reconciler.xds.resources` re-exports every name here.
"""

from __future__ import annotations

__all__ = ["LISTENER", "ROUTE", "CLUSTER", "ENDPOINT", "SECRET", "TYPE_ORDER", "SHORT_NAMES"]

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

TYPE_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)
"""The order Envoy needs updates in on one ADS stream (make before break)."""

SHORT_NAMES = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}
