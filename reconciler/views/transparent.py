"""What a transparent proxy reaches: its outbounds at the mesh's VIPs and the DNS names of them.

A Dataplane with `networking.transparentProxying` gets, besides the outbounds it declares, the
mesh's virtual outbounds (`MeshModel.virtual_outbounds`, one per VIP and port), narrowed as
Kuma v2.14.3 narrows them (pkg/xds/sync/dataplane_proxy_builder.go `resolveVIPOutbounds` and
pkg/xds/context/destination_index.go `GetReachableBackends`):

- a `kuma.io/service` outbound stays when `reachableServices` is empty or names its service;
- a MeshService, MeshExternalService or MeshMultiZoneService outbound is dropped when
  `reachableServices` is set and no backend is selected, and when the Mesh's
  `meshServices.mode` is `ReachableBackends` and the Dataplane lists no `reachableBackends`;
  when backends are selected (by the Dataplane's own `backendRef` outbounds, else by
  `reachableBackends.refs`), only the selected ones stay;
- an outbound at one of the Dataplane's own inbound addresses and ports is dropped.

Declared outbounds come first and win over a virtual one at the same address and port (Kuma
drops the declared ones of a transparent proxy instead: docs/networking.md says why we keep them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from ipaddress import IPv4Address, ip_address

from reconciler.mesh.model import Dataplane, MeshModel, Outbound
from reconciler.mesh.transparent import BackendRef, DnsRecord, Redirect

__all__ = ["ipv6_enabled", "transparent_dns", "transparent_outbounds", "transparent_reach", "to_v6"]

_KINDS = ("MeshService", "MeshExternalService", "MeshMultiZoneService")

Selected = frozenset[tuple[str, str, int]]
"""(kind, name, port) of the Mesh*Service outbounds a proxy keeps."""


def ipv6_enabled(redirect: Redirect) -> bool:
    """Kuma's EnabledIPv6: every mode but `IPv4` (2 in the protobuf enum); an IPv4 address
    maps into IPv6 anyway."""
    return redirect.ip_family_mode not in ("IPv4", "2")


def transparent_outbounds(model: MeshModel, dp: Dataplane) -> tuple[Outbound, ...]:
    """The declared outbounds, then the mesh's virtual ones this proxy reaches (module docstring)."""
    tp = dp.redirect
    if tp is None or dp.gateway is not None:
        return dp.outbounds
    virtual = model.virtual_outbounds.get(dp.mesh) or ()
    if not virtual:
        return dp.outbounds
    taken = {(o.address, o.port) for o in dp.outbounds}
    taken |= {(i.address, i.port) for i in dp.inbounds} | {(i.service_address, i.service_port) for i in dp.inbounds}
    services = frozenset(tp.reachable_services or ())
    selected = _selected_backends(model, dp, tp, virtual)
    mode = _mesh_services_mode(model, dp.mesh)
    kept: list[Outbound] = []
    for o in virtual:
        if (o.address, o.port) in taken:
            continue
        if o.backend_ref is None:
            if services and o.service not in services:
                continue
        else:
            if services and selected is None:
                continue
            if tp.reachable_backends is None and mode == "ReachableBackends":
                continue
            if selected is not None and o.backend_ref not in selected:
                continue
        taken.add((o.address, o.port))
        kept.append(o)
    return (*dp.outbounds, *kept)


def _mesh_services_mode(model: MeshModel, mesh: str) -> str:
    info = model.meshes.get(mesh)
    spec = info.resource.spec if info is not None else {}
    return str(((spec or {}).get("meshServices") or {}).get("mode") or "Disabled")


def _selected_backends(model: MeshModel, dp: Dataplane, tp: Redirect, virtual: Iterable[Outbound]) -> Selected | None:
    """Kuma's GetReachableBackends: None when every backend is reachable, else the selected ones."""
    declared: list[BackendRef] = [(k, n, p, {}) for k, n, p in (o.backend_ref for o in dp.outbounds if o.backend_ref is not None)]
    if not declared and tp.reachable_backends is None:
        return None  # the common case, answered without looking at the mesh's resources
    ports: dict[tuple[str, str], set[int]] = {}
    for o in virtual:
        if o.backend_ref is not None:
            ports.setdefault(o.backend_ref[:2], set()).add(o.backend_ref[2])
    labels = _labels_by_backend(model, dp.mesh) if any(ref[3] for ref in tp.reachable_backends or ()) else {}
    out = _resolve(declared, ports, labels)
    if out:
        return out
    if tp.reachable_backends is None:
        return None
    return _resolve(tp.reachable_backends, ports, labels)


def _resolve(
    refs: Iterable[BackendRef], ports: Mapping[tuple[str, str], set[int]], labels: Mapping[tuple[str, str], Mapping[str, str]]
) -> Selected:
    out: set[tuple[str, str, int]] = set()
    for kind, name, port, selector in refs:
        if kind not in _KINDS:
            continue
        # Labels pick every resource of the kind carrying all of them; none matching, the name counts.
        names = [n for (k, n), have in labels.items() if k == kind and selector and all(have.get(a) == b for a, b in selector.items())]
        for target in names or [name]:
            known = ports.get((kind, target))
            if not known:
                continue
            # A port the destination does not have selects all of its ports, as Kuma's FindPortByName fallback does.
            chosen = {port} if port and port in known else known
            out |= {(kind, target, p) for p in chosen}
    return frozenset(out)


def _labels_by_backend(model: MeshModel, mesh: str) -> dict[tuple[str, str], Mapping[str, str]]:
    """(kind, name) → labels, for the resources of `mesh` the model knows the labels of."""
    out: dict[tuple[str, str], Mapping[str, str]] = {}
    for (m, _), service in model.services.items():
        if m == mesh and service.mesh_service:
            out[("MeshService", service.mesh_service)] = service.labels
    for r in model.externals:
        if r.mesh == mesh:
            out[("MeshExternalService", r.name)] = r.labels or {}
    return out


def to_v6(address: str) -> str:
    """Kuma's ToV6: an IPv4 address as `::ffff:xxxx:xxxx` (Go's %x, no leading zeros)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if not isinstance(ip, IPv4Address):
        return address
    b = ip.packed
    return f"::ffff:{(b[0] << 8) + b[1]:x}:{(b[2] << 8) + b[3]:x}"


def transparent_dns(model: MeshModel, dp: Dataplane, outbounds: Iterable[Outbound]) -> tuple[DnsRecord, ...]:
    """The mesh's DNS records whose VIP is one of this proxy's outbound addresses (Kuma's DNS
    generator answers nothing else), with the IPv6 form of each IPv4 VIP when IPv6 is on."""
    tp = dp.redirect
    if tp is None or dp.gateway is not None:
        return ()
    records = model.dns.get(dp.mesh) or ()
    if not records:
        return ()
    addresses = {o.address for o in outbounds}
    v6 = ipv6_enabled(tp)
    out = [_with_v6(record) if v6 else record for record in records if any(ip in addresses for ip in record.ips)]
    return tuple(sorted(out, key=lambda r: r.name))


@lru_cache(maxsize=65536)
def _with_v6(record: DnsRecord) -> DnsRecord:
    """The record answering also with each IPv4 VIP's IPv6 form (computed once per record, not per proxy)."""
    ips = list(record.ips)
    ips += [m for m in (to_v6(ip) for ip in record.ips) if m not in ips]
    return DnsRecord(record.name, tuple(ips))


def transparent_reach(model: MeshModel, dp: Dataplane) -> tuple[tuple[Outbound, ...], tuple[DnsRecord, ...]]:
    """The proxy's outbounds and its DNS records (both empty of VIPs without transparent proxying)."""
    outbounds = transparent_outbounds(model, dp)
    return outbounds, transparent_dns(model, dp, outbounds)
