"""MeshTLS → TLS parameters of the mesh's TLS contexts (Kuma v2.14).

`mode` (Strict / Permissive) decides an inbound's filter chains and is read by the inbound
generator. `tlsVersion` and `tlsCiphers`, allowed only in a policy whose top-level targetRef
is the whole Mesh, go on every inbound's DownstreamTlsContext and, as Kuma does, on the
UpstreamTlsContext of every outbound cluster towards the mesh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from reconciler.envoy_builders import pack
from reconciler.mesh.model import Dataplane
from reconciler.policies.core.match import Destination, PolicyIndex, matched_policies
from reconciler.policies.core.merge import merge_confs
from reconciler.policies.core.plugin import HookContext, Plugin

__all__ = ["PLUGIN", "mesh_wide_conf", "configure_listener", "configure_cluster"]

_VERSIONS = {
    "TLSAuto": common_pb2.TlsParameters.TLS_AUTO,
    "TLS10": common_pb2.TlsParameters.TLSv1_0,
    "TLS11": common_pb2.TlsParameters.TLSv1_1,
    "TLS12": common_pb2.TlsParameters.TLSv1_2,
    "TLS13": common_pb2.TlsParameters.TLSv1_3,
}


def mesh_wide_conf(dp: Dataplane, dest: Destination, index: PolicyIndex) -> Mapping[str, Any] | None:
    """The merged conf of MeshTLS policies that target the whole mesh (for outbound clusters)."""
    defaults = []
    for m in matched_policies("MeshTLS", dp, index):
        if (m.resource.spec.get("targetRef") or {}).get("kind", "Mesh") != "Mesh":
            continue
        for entry in list(m.resource.spec.get("from") or ()) + list(m.resource.spec.get("rules") or ()):
            if entry.get("default") is not None and not entry.get("matches"):
                defaults.append(entry["default"])
    if not defaults:
        return None
    conf = merge_confs(defaults)
    return conf if ("tlsVersion" in conf or "tlsCiphers" in conf) else None


def _params(conf: Mapping[str, Any], params: common_pb2.TlsParameters) -> bool:
    version = conf.get("tlsVersion") or {}
    changed = False
    if version.get("min") in _VERSIONS:
        params.tls_minimum_protocol_version = _VERSIONS[version["min"]]
        changed = True
    if version.get("max") in _VERSIONS:
        params.tls_maximum_protocol_version = _VERSIONS[version["max"]]
        changed = True
    if conf.get("tlsCiphers"):
        del params.cipher_suites[:]
        params.cipher_suites.extend(str(c) for c in conf["tlsCiphers"])
        changed = True
    return changed


def configure_listener(listener: listener_pb2.Listener, conf: Mapping[str, Any], ctx: HookContext) -> None:
    for chain in listener.filter_chains:
        if chain.transport_socket.name != "envoy.transport_sockets.tls":
            continue
        context = tls_pb2.DownstreamTlsContext()
        chain.transport_socket.typed_config.Unpack(context)
        if _params(conf, context.common_tls_context.tls_params):
            chain.transport_socket.typed_config.CopyFrom(pack(context))


def configure_cluster(cluster: cluster_pb2.Cluster, conf: Mapping[str, Any], ctx: HookContext) -> None:
    if ctx.direction != "outbound" or cluster.transport_socket.name != "envoy.transport_sockets.tls":
        return
    context = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(context)
    if _params(conf, context.common_tls_context.tls_params):
        cluster.transport_socket.typed_config.CopyFrom(pack(context))


PLUGIN = Plugin(kind="MeshTLS", listener=configure_listener, cluster=configure_cluster, outbound_conf=mesh_wide_conf)
"""TLS versions and ciphers on inbound listeners, and on outbound clusters from the mesh-wide inbound conf."""
