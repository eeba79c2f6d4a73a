"""The demo's ports: which ones it binds, whether they are free, and moving them all at once.

example-repo/ keeps every port the demo binds between 15000 and 19999 (its README's port plan),
and the control plane uses Kuma's 5678 (xDS) and 5681 (API). `--base-port B` moves all of them
into B…B+4999: a port p of the plan becomes p − 15000 + B, and the control plane takes B+678
and B+681 (so base 25000 gives 25678 and 25681). The move is made in the YAML of the seeded
repository, the one place those ports live, and the base is remembered in the demo's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reconciler.demo_telemetry import prometheus_targets, zipkin_ports
from reconciler.mesh.model import Dataplane, dataplane_from_resource
from reconciler.model import Snapshot
from reconciler.ports import listen_error

__all__ = [
    "PLAN_FIRST",
    "PLAN_SPAN",
    "BASE_PORTS",
    "PortUse",
    "control_plane_ports",
    "move_ports_in_yaml",
    "planned_ports",
    "first_taken",
    "free_base",
]

PLAN_FIRST = 15000
PLAN_SPAN = 5000
# Where --base-port may go: the whole block stays below 65536.
BASE_PORTS = (1024, 65536 - PLAN_SPAN)
KUMA_XDS_PORT, KUMA_API_PORT = 5678, 5681
# Bases to suggest when a port is taken: below Linux's ephemeral range (32768-60999), where
# outgoing connections take their ports, first.
_SUGGESTED_BASES = (20000, 25000, 10000, 40000, 45000, 50000, 55000)

# `port: 16001`, `servicePort: 18001`, `advertisedPort: 17001`, in block or flow style.
_PORT_FIELD = re.compile(r"\b(port|servicePort|advertisedPort)(:[ \t]*)(\d+)\b")
# A URL on the demo machine, such as MeshTrace's `url: http://127.0.0.1:19411/api/v2/spans`.
_LOOPBACK_URL = re.compile(r"(//127\.0\.0\.1)(:)(\d+)\b")


@dataclass(frozen=True, slots=True)
class PortUse:
    """One port the demo binds, and what binds it (said in the error when it is taken)."""

    address: str
    port: int
    what: str


def control_plane_ports(base: int | None) -> tuple[int, int]:
    """(xDS, API): Kuma's ports, or the base's B+678 and B+681."""
    if base is None:
        return KUMA_XDS_PORT, KUMA_API_PORT
    return base + KUMA_XDS_PORT % 1000, base + KUMA_API_PORT % 1000


def move_ports_in_yaml(text: str, base: int) -> str:
    """`text` with every port of the plan (15000-19999) moved to the block starting at `base`:
    port fields, and the port of a URL on 127.0.0.1 (the demo's Zipkin receiver). Other ports (a MeshService's 80, a collector's 4317) are not bound by the demo and stay."""

    def moved(m: re.Match[str]) -> str:
        port = int(m.group(3))
        if PLAN_FIRST <= port < PLAN_FIRST + PLAN_SPAN:
            port += base - PLAN_FIRST
        return f"{m.group(1)}{m.group(2)}{port}"

    return _LOOPBACK_URL.sub(moved, _PORT_FIELD.sub(moved, text))


def planned_ports(snapshot: Snapshot, xds_port: int, api_port: int, address: str = "127.0.0.1") -> list[PortUse]:
    """Every port the demo binds for this configuration: the control plane's, for each
    Dataplane its Envoy (admin, inbound, outbound and gateway listeners, MeshMetric's
    Prometheus endpoint) and its workloads, and the Zipkin receivers MeshTrace sends to."""
    dataplanes = [dataplane_from_resource(r) for r in snapshot.of_type("Dataplane")]
    uses = [PortUse(address, xds_port, "the control plane's xDS"), PortUse(address, api_port, "the control plane's API")]
    for dp in dataplanes:
        uses.append(PortUse("127.0.0.1", dp.admin_port, f"{dp.name}'s Envoy admin"))
        for i in dp.inbounds:
            uses.append(PortUse(i.address, i.port, f"{dp.name}'s inbound for {i.service}"))
            if not dp.gateway:
                uses.append(PortUse(i.service_address, i.service_port, f"the {i.service} workload behind {dp.name}"))
        for o in dp.outbounds:
            target = o.service or (o.backend_ref[1] if o.backend_ref else "?")
            uses.append(PortUse(o.address, o.port, f"{dp.name}'s outbound to {target}"))
        uses += _gateway_listeners(dp, snapshot)
    for t in prometheus_targets(snapshot):
        uses.append(PortUse(t.address, t.port, f"{t.dataplane}'s MeshMetric Prometheus endpoint"))
    for port in zipkin_ports(snapshot):
        uses.append(PortUse("127.0.0.1", port, "the demo's Zipkin receiver (MeshTrace)"))
    return uses


def _gateway_listeners(dp: Dataplane, snapshot: Snapshot) -> Iterator[PortUse]:
    if not dp.gateway:
        return
    tags = {k: str(v) for k, v in (dp.gateway.get("tags") or {}).items()}
    for gw in snapshot.of_type("MeshGateway"):
        if gw.mesh != dp.mesh:
            continue
        selectors = [s.get("match") or {} for s in gw.spec.get("selectors") or []]
        if not any(all(tags.get(k) == str(v) for k, v in match.items()) for match in selectors):
            continue
        for listener in (gw.spec.get("conf") or {}).get("listeners") or []:
            if isinstance(listener.get("port"), int):
                yield PortUse(dp.address, listener["port"], f"{dp.name}'s gateway listener ({gw.name})")


def _taken(address: str, port: int) -> bool:
    return listen_error(address, port) is not None


def first_taken(uses: Iterable[PortUse]) -> tuple[PortUse, PortUse | None] | None:
    """The first port in `uses` that is taken: by something already listening (`(use, None)`),
    or by an earlier use in the list (`(use, earlier)`: the configuration uses it twice)."""
    seen: dict[tuple[str, int], PortUse] = {}
    for u in uses:
        earlier = seen.get((u.address, u.port))
        if earlier is not None:
            return u, earlier
        if _taken(u.address, u.port):
            return u, None
        seen[(u.address, u.port)] = u
    return None


def free_base(address: str = "127.0.0.1") -> int | None:
    """A base whose whole block is free right now, to suggest; None when none of ours is."""
    for base in _SUGGESTED_BASES:
        if not any(_taken(address, port) for port in range(base, base + PLAN_SPAN)):
            return base
    return None
