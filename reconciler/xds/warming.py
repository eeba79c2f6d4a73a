"""What Envoy will ask for before clusters sent to it are warm: the EDS names of EDS clusters.

A cluster Envoy has not had before (or one rebuilt with other settings) warms until it has its
endpoints; for an EDS cluster Envoy asks for them by adding the cluster's EDS name
(`eds_cluster_config.service_name`, else the cluster's name) to its EDS subscription.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2

from reconciler.xds.resources import XdsResource

__all__ = ["eds_names"]


def eds_names(clusters: Iterable[XdsResource]) -> set[str]:
    """The EDS resource names `clusters` (CDS resources) need before they are warm."""
    return {name for res in clusters if (name := _eds_name(res.payload)) is not None}


@functools.lru_cache(maxsize=1 << 16)
def _eds_name(payload: bytes) -> str | None:
    """A cluster's EDS name (None: not an EDS cluster). Clusters are shared by many proxies'
    configs, so each is parsed once, not once per proxy it is sent to."""
    cluster = cluster_pb2.Cluster.FromString(payload)
    if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster_pb2.Cluster.EDS:
        return str(cluster.eds_cluster_config.service_name or cluster.name)
    return None
