"""What Envoy will ask for before clusters sent to it are warm: the EDS names of EDS clusters.

A cluster Envoy has not had before (or one rebuilt with other settings) warms until it has its
endpoints; for an EDS cluster Envoy asks for them by adding the cluster's EDS name
(`eds_cluster_config.service_name`, else the cluster's name) to its EDS subscription.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2

from reconciler.xds.resources import XdsResource

__all__ = ["eds_names"]


def eds_names(clusters: Iterable[XdsResource]) -> set[str]:
    """The EDS resource names `clusters` (CDS resources) need before they are warm."""
    out: set[str] = set()
    for res in clusters:
        cluster = cluster_pb2.Cluster.FromString(res.payload)
        if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster_pb2.Cluster.EDS:
            out.add(cluster.eds_cluster_config.service_name or cluster.name)
    return out
