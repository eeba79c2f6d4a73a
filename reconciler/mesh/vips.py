"""VIPs and the names the sidecar's DNS answers: what a transparent proxy reaches by address.

Kuma gives every destination of a mesh a virtual IP (pkg/dns/vips_allocator.go,
pkg/core/resources/apis/core/vip/allocator.go) and its sidecars a DNS proxy that answers the
destination's names with it (pkg/xds/topology/dns.go, the MeshService family's `Domains`):

| entry | range | names | outbounds at the VIP |
| --- | --- | --- | --- |
| `kuma.io/service` of an inbound (not `Ignored`, port not 0) | 240.0.0.0/4, per mesh | `<svc>.mesh`, and `<svc with _ as .>.mesh` | port 80, tags `kuma.io/service` |
| MeshService | 241.0.0.0/8 | its HostnameGenerator addresses | each of its ports |
| MeshExternalService | 242.0.0.0/8 | its HostnameGenerator addresses | `spec.match.port` |
| MeshMultiZoneService | 243.0.0.0/8 | its HostnameGenerator addresses | each of its ports |

A mesh whose `meshServices.mode` is `Exclusive` gets no `kuma.io/service` entries (as Kuma).

Stability. Kuma allocates sequentially and persists the result (a ConfigMap, the resources'
status). Here the VIPs must also be the same whether `serve`, `plan` or `reconcile --out`
computes them from one commit, so a new entry's VIP is derived: a hash of (mesh, entry) picks
an address of its range, and a taken address moves it on to the next free one. Entries are
taken in sorted order, the range's network and broadcast addresses are never used, and the
`kuma.io/service` range skips the three /8 ranges of the MeshService family (Kuma's
sequential allocation never reaches them; a hash would). Every VIP a `previous` allocation
gives (`serve` keeps it in its state directory as vips.json) is kept first, so a VIP never
moves while its entry exists, whatever is added around it. A VIP written in a MeshService's
(MeshExternalService's, MeshMultiZoneService's) `status` in git, as Kuma exports it, is kept
before either.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.frozen import FrozenDict
from reconciler.mesh.hostname_generators import ADDRESS_KINDS, Hostnames, generate_hostnames, generators_of
from reconciler.mesh.transparent import DnsRecord
from reconciler.model import Resource

__all__ = [
    "SERVICE_RANGE",
    "KIND_RANGES",
    "VIP_PORT",
    "DNS_DOMAIN",
    "Range",
    "ServiceInbound",
    "VirtualOutbound",
    "ResourceAddresses",
    "Addresses",
    "allocate",
    "mesh_addresses",
    "service_entry",
]

SERVICE_TAG = "kuma.io/service"
VIP_PORT = 80
"""Kuma's `dnsServer.serviceVipPort`: the port of a `kuma.io/service` VIP's outbound."""
DNS_DOMAIN = "mesh"
"""Kuma's `dnsServer.domain`."""


class Range:
    """The usable addresses of a CIDR: neither its network nor broadcast address, nor `excluded`."""

    def __init__(self, cidr: str, excluded: Iterable[str] = ()) -> None:
        net = ipaddress.IPv4Network(cidr)
        self.cidr = cidr
        start, end = int(net.network_address) + 1, int(net.broadcast_address) - 1
        holes = sorted((int(n.network_address), int(n.broadcast_address)) for n in map(ipaddress.IPv4Network, excluded))
        segments: list[tuple[int, int]] = []
        for low, high in holes:
            if low > start:
                segments.append((start, min(low - 1, end)))
            start = max(start, high + 1)
        if start <= end:
            segments.append((start, end))
        self.segments = tuple(segments)
        self.size = sum(high - low + 1 for low, high in segments)

    def address(self, index: int) -> int:
        for low, high in self.segments:
            if index <= high - low:
                return low + index
            index -= high - low + 1
        raise IndexError(index)

    def contains(self, ip: int) -> bool:
        return any(low <= ip <= high for low, high in self.segments)


SERVICE_RANGE = Range("240.0.0.0/4", ("241.0.0.0/8", "242.0.0.0/8", "243.0.0.0/8"))
KIND_RANGES: Mapping[str, Range] = {
    "MeshService": Range("241.0.0.0/8"),
    "MeshExternalService": Range("242.0.0.0/8"),
    "MeshMultiZoneService": Range("243.0.0.0/8"),
}
"""Kuma's `ipam.meshService.cidr`, `ipam.meshExternalService.cidr`, `ipam.meshMultiZoneService.cidr`."""


def service_entry(service: str) -> str:
    """The hostname entry of a `kuma.io/service` (Kuma's `service:<name>`)."""
    return f"service:{service}"


def _entry_kind(entry: str) -> str:
    return entry.split(":", 1)[0]


def allocate(
    entries: Iterable[tuple[str, str]],
    previous: Mapping[tuple[str, str], str] | None = None,
    *,
    service_range: Range = SERVICE_RANGE,
    kind_ranges: Mapping[str, Range] = KIND_RANGES,
) -> dict[tuple[str, str], str]:
    """(mesh, entry) → VIP for every entry; `previous` VIPs kept where still in their range and free.

    Entries are `service:<name>` (their range is per mesh, as Kuma's) or `<Kind>:<name>` for the
    MeshService family (one range across meshes, as Kuma's).
    """
    wanted = sorted(set(entries))
    taken: dict[tuple[str, int], tuple[str, str]] = {}  # (pool, address) → its entry
    used: dict[str, int] = {}  # pool → how many of its addresses are taken
    out: dict[tuple[str, str], str] = {}

    def pool_of(mesh: str, entry: str) -> tuple[str, Range] | None:
        kind = _entry_kind(entry)
        if kind == "service":
            return f"service/{mesh}", service_range
        found = kind_ranges.get(kind)
        return (kind, found) if found is not None else None

    old = previous or {}
    for key in wanted:
        given = old.get(key)
        pool = pool_of(*key)
        if given is None or pool is None:
            continue
        try:
            ip = int(ipaddress.IPv4Address(given))
        except ValueError:
            continue
        if pool[1].contains(ip) and (pool[0], ip) not in taken:
            taken[(pool[0], ip)] = key
            used[pool[0]] = used.get(pool[0], 0) + 1
            out[key] = given
    for key in wanted:
        pool = pool_of(*key)
        if key in out or pool is None:
            continue
        name, rng = pool
        if used.get(name, 0) >= rng.size:
            continue  # the range is full: Kuma logs and leaves the entry without a VIP
        digest = hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).digest()
        index = int.from_bytes(digest[:8], "big") % rng.size
        while (name, rng.address(index)) in taken:
            index = (index + 1) % rng.size
        ip = rng.address(index)
        taken[(name, ip)] = key
        used[name] = used.get(name, 0) + 1
        out[key] = str(ipaddress.IPv4Address(ip))
    return out


@dataclass(frozen=True, slots=True)
class ServiceInbound:
    """One inbound of a Dataplane as the allocator needs it."""

    mesh: str
    service: str
    port: int
    ignored: bool = False


@dataclass(frozen=True, slots=True)
class VirtualOutbound:
    """An outbound at a VIP, as plain values (mesh/model.py makes its Outbound of it)."""

    address: str
    port: int
    service: str = ""
    tags: Mapping[str, str] = field(default_factory=FrozenDict)
    backend_ref: tuple[str, str, int] | None = None


@dataclass(frozen=True, slots=True)
class ResourceAddresses:
    """What Kuma writes into a MeshService's, MeshExternalService's or MeshMultiZoneService's status."""

    vip: str
    hostnames: Hostnames


@dataclass(frozen=True, slots=True)
class Addresses:
    outbounds: dict[str, tuple[VirtualOutbound, ...]]
    dns: dict[str, tuple[DnsRecord, ...]]
    vips: dict[tuple[str, str], str]
    resources: dict[tuple[str, str, str], ResourceAddresses]
    """(kind, mesh, name) → its VIP and hostnames (the API's `status`)."""


def _ports(resource: Resource) -> list[int]:
    if resource.type == "MeshExternalService":
        match = resource.spec.get("match") or {}
        return [int(match.get("port") or 0)] if isinstance(match, Mapping) else []
    return [int(p.get("port") or 0) for p in resource.spec.get("ports") or () if isinstance(p, Mapping)]


def _written_vips(family: Iterable[Resource]) -> dict[tuple[str, str], str]:
    """VIPs a `status` committed to git already gives (a resource exported from Kuma keeps its
    address, as Kuma's allocator keeps a resource's VIPs); they win over `previous`."""
    out: dict[tuple[str, str], str] = {}
    for r in family:
        status = r.status or {}
        vip = status.get("vip") if r.type == "MeshExternalService" else next(iter(status.get("vips") or ()), None)
        if isinstance(vip, Mapping) and isinstance(vip.get("ip"), str):
            out[(r.mesh, f"{r.type}:{r.name}")] = vip["ip"]
    return out


def _exclusive(mesh: Resource) -> bool:
    services = mesh.spec.get("meshServices")
    return isinstance(services, Mapping) and services.get("mode") == "Exclusive"


def mesh_addresses(
    meshes: Mapping[str, Resource],
    inbounds: Iterable[ServiceInbound],
    resources: Iterable[Resource],
    previous: Mapping[tuple[str, str], str] | None = None,
) -> Addresses:
    """The VIPs, virtual outbounds and DNS records of every mesh.

    `resources`: the snapshot's resources (the MeshService family and HostnameGenerators are
    read from them); `inbounds`: every Dataplane inbound of the meshes (git's and registered).
    """
    services: dict[str, set[str]] = {m: set() for m in meshes}
    for i in inbounds:
        if i.ignored or i.port == 0 or not i.service or i.mesh not in meshes:
            continue
        services[i.mesh].add(i.service)
    for mesh, resource in meshes.items():
        if _exclusive(resource):
            services[mesh].clear()
    resources = list(resources)
    family = sorted((r for r in resources if r.type in ADDRESS_KINDS and r.mesh in meshes), key=lambda r: (r.type, r.name))
    entries = [(mesh, service_entry(s)) for mesh, names in services.items() for s in names]
    entries += [(r.mesh, f"{r.type}:{r.name}") for r in family]
    vips = allocate(entries, {**(previous or {}), **_written_vips(family)})
    hostnames = generate_hostnames(generators_of(resources), family) if family else {}

    outbounds: dict[str, list[VirtualOutbound]] = {m: [] for m in meshes}
    records: dict[str, dict[str, DnsRecord]] = {m: {} for m in meshes}
    for mesh in meshes:
        for service in sorted(services[mesh]):
            vip = vips.get((mesh, service_entry(service)))
            if vip is None:
                continue
            outbounds[mesh].append(VirtualOutbound(vip, VIP_PORT, service, FrozenDict({SERVICE_TAG: service})))
            for name in dict.fromkeys((f"{service}.{DNS_DOMAIN}", f"{service.replace('_', '.')}.{DNS_DOMAIN}")):
                records[mesh].setdefault(name, DnsRecord(name, (vip,)))
    addresses: dict[tuple[str, str, str], ResourceAddresses] = {}
    for kind in ADDRESS_KINDS:
        for r in family:
            if r.type != kind:
                continue
            vip = vips.get((r.mesh, f"{kind}:{r.name}"))
            if vip is None:
                continue
            names = hostnames.get((kind, r.mesh, r.name), Hostnames())
            addresses[(kind, r.mesh, r.name)] = ResourceAddresses(vip, names)
            for port in _ports(r):
                outbounds[r.mesh].append(VirtualOutbound(vip, port, backend_ref=(kind, r.name, port)))
            for a in names.addresses:
                records[r.mesh].setdefault(a.hostname, DnsRecord(a.hostname, (vip,)))
    return Addresses(
        {m: tuple(o) for m, o in outbounds.items()},
        {m: tuple(records[m][n] for n in sorted(records[m])) for m in meshes},
        vips,
        addresses,
    )
