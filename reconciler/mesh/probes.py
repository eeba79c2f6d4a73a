"""A Dataplane's `probes` (Kuma's virtual probes) as a value of the mesh model.

Kuma exposes the workload's HTTP health endpoints on a plain-HTTP port of the sidecar, so a
prober outside the mesh (kubelet on Kubernetes, a load balancer on Universal) can reach them
while the inbound itself wants mTLS: `GET <address>:<probes.port><path>` is sent to the inbound
whose workload port is `inboundPort`, at `inboundPath`. The listener is
reconciler/xds/generate/probes.py; the fields are validated in reconciler/kinds/dataplane.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ProbeEndpoint", "VirtualProbes", "probes_from_spec"]


@dataclass(frozen=True, slots=True)
class ProbeEndpoint:
    inbound_port: int
    inbound_path: str
    path: str


@dataclass(frozen=True, slots=True)
class VirtualProbes:
    port: int
    endpoints: tuple[ProbeEndpoint, ...]


def _path(value: Any) -> str:
    return urlsplit(str(value or "")).path  # Kuma matches and rewrites the URL's path alone


def probes_from_spec(raw: Any) -> VirtualProbes | None:
    """The validated `probes` of a Dataplane spec (either spelling of each field); None when absent."""
    if not isinstance(raw, Mapping) or not raw.get("port"):
        return None
    endpoints = []
    for e in raw.get("endpoints") or ():
        if not isinstance(e, Mapping):
            continue
        port = e.get("inboundPort", e.get("inbound_port"))
        endpoints.append(ProbeEndpoint(int(port or 0), _path(e.get("inboundPath", e.get("inbound_path"))), _path(e.get("path"))))
    return VirtualProbes(int(raw["port"]), tuple(endpoints))
