"""The mesh as the data plane sees it: dataplanes, their inbounds and outbounds, services and
their endpoints. Built from an applied snapshot plus the dataplanes registered at runtime.

Follows Kuma's Universal mode without transparent proxying:
- an inbound's Envoy listener binds `inbound.address` (default `networking.address`) and port
  `port`; it forwards to the workload at `serviceAddress` (default: the listener's address)
  and `servicePort` (default: `port`);
- other proxies reach it at `networking.advertisedAddress` (default: the listener address);
- an outbound binds `address` (default 127.0.0.1) and `port`, and targets the service named by
  its `kuma.io/service` tag or its `backendRef` (a MeshService port);
- only inbounds in state `Ready` (and `health.ready` when given) are endpoints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.frozen import FrozenDict
from reconciler.kind_names import POLICY_KINDS
from reconciler.mesh.probes import VirtualProbes, probes_from_spec
from reconciler.mesh.secret_data import with_secret_data
from reconciler.mesh.transparent import BackendRef, DnsRecord, Redirect, redirect_from_spec
from reconciler.mesh.vips import ResourceAddresses, ServiceInbound, mesh_addresses
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = [
    "SERVICE_TAG",
    "PROTOCOL_TAG",
    "Inbound",
    "Outbound",
    "Dataplane",
    "Endpoint",
    "Service",
    "MeshInfo",
    "MeshModel",
    "build_mesh_model",
    "dataplane_from_resource",
    "HTTP_PROTOCOLS",
    "Redirect",
    "BackendRef",
    "DnsRecord",
    "redirect_from_spec",
]

SERVICE_TAG = "kuma.io/service"
PROTOCOL_TAG = "kuma.io/protocol"
HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc"})
DEFAULT_ADMIN_PORT = 9901


def _protocol(value: Any) -> str:
    p = str(value or "tcp").lower()
    return p if p in ("http", "http2", "grpc", "tcp", "kafka") else "tcp"


@dataclass(frozen=True, slots=True)
class Inbound:
    address: str
    port: int
    service_address: str
    service_port: int
    tags: Mapping[str, str]
    name: str = ""
    ready: bool = True
    ignored: bool = False
    """`state: Ignored`: no endpoint and no VIP (Kuma's Ignored inbound)."""

    @property
    def service(self) -> str:
        return self.tags.get(SERVICE_TAG, "")

    @property
    def protocol(self) -> str:
        return _protocol(self.tags.get(PROTOCOL_TAG))


@dataclass(frozen=True, slots=True)
class Outbound:
    address: str
    port: int
    service: str
    """The `kuma.io/service` it targets; empty when it names a MeshService (backend_ref)."""
    tags: Mapping[str, str] = field(default_factory=FrozenDict)
    backend_ref: tuple[str, str, int] | None = None
    """(kind, name, port) for outbounds written with `backendRef`."""


@dataclass(frozen=True, slots=True)
class Dataplane:
    mesh: str
    name: str
    address: str
    advertised_address: str
    inbounds: tuple[Inbound, ...]
    outbounds: tuple[Outbound, ...]
    admin_port: int = DEFAULT_ADMIN_PORT
    gateway: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=FrozenDict)
    registered: bool = False
    """True when it came from node metadata at connect time rather than from git."""
    transparent_proxying: bool = False
    """`networking.transparentProxying` is declared: traffic to its inbound ports is redirected
    to its sidecar, even when an inbound is the workload's own address and port."""
    redirect: Redirect | None = None
    """The declared `transparentProxying` itself (None when absent)."""
    probes: VirtualProbes | None = None
    """The declared `probes` (Kuma's virtual probes, reconciler/xds/generate/probes.py)."""

    @property
    def node_id(self) -> str:
        return f"{self.mesh}.{self.name}"

    @property
    def key(self) -> ResourceKey:
        return ResourceKey("Dataplane", self.mesh, self.name)

    def tags(self) -> dict[str, set[str]]:
        """All tag values across inbounds (Kuma's "dataplane tags" used by MeshSubset)."""
        out: dict[str, set[str]] = defaultdict(set)
        for i in self.inbounds:
            for k, v in i.tags.items():
                out[k].add(v)
        if self.gateway:
            for k, v in (self.gateway.get("tags") or {}).items():
                out[k].add(v)
        return out


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    tags: Mapping[str, str]
    dataplane: str
    sidecar: bool = True
    """False when no sidecar can be in front of the workload: its inbound is the workload's own
    address and port (`servicePort` unset or equal to `port`) and the Dataplane declares no
    transparent proxying; callers then reach the workload itself."""


@dataclass(frozen=True, slots=True)
class Service:
    """A destination: a `kuma.io/service` name, or one port of a MeshService."""

    mesh: str
    name: str
    protocol: str
    endpoints: tuple[Endpoint, ...]
    cluster_name: str
    mesh_service: str = ""
    """The MeshService this came from, empty for a kuma.io/service tag."""
    port: int = 0
    port_name: str = ""
    """The MeshService port's `name` (policies' `sectionName` names a port by it)."""
    labels: Mapping[str, str] = field(default_factory=FrozenDict)
    """The MeshService's labels (policies' `to[].targetRef.labels` select on them)."""


@dataclass(frozen=True, slots=True)
class MeshInfo:
    name: str
    resource: Resource
    otel_backends: tuple[Resource, ...] = ()
    """The mesh's MeshOpenTelemetryBackends, which MeshTrace (and the other observability
    policies) name by `backendRef` labels."""


@dataclass(frozen=True, slots=True)
class MeshModel:
    meshes: Mapping[str, MeshInfo]
    dataplanes: Mapping[str, Dataplane]
    """By node id `<mesh>.<name>`."""
    services: Mapping[tuple[str, str], Service]
    """By (mesh, service name) for kuma.io/service; (mesh, "msvc:<name>:<port>") for MeshService ports."""
    policies: tuple[Resource, ...] = ()
    """targetRef policies committed to git, in snapshot order."""
    gateways: tuple[Resource, ...] = ()
    """MeshGateway resources."""
    secrets: Mapping[tuple[str, str], Resource] = field(default_factory=dict)
    """Secret resources by (mesh, name)."""
    identities: tuple[Resource, ...] = ()
    """MeshIdentity resources."""
    trusts: tuple[Resource, ...] = ()
    """MeshTrust resources."""

    externals: tuple[Resource, ...] = ()
    """MeshExternalService resources."""
    virtual_outbounds: Mapping[str, tuple[Outbound, ...]] = field(default_factory=dict)
    """By mesh: the outbounds every transparent proxy of the mesh gets at the VIPs (Kuma's
    VIPOutbounds and the MeshService, MeshExternalService and MeshMultiZoneService outbounds),
    before `reachableServices`/`reachableBackends` narrow them (reconciler/mesh/vips.py)."""
    dns: Mapping[str, tuple[DnsRecord, ...]] = field(default_factory=dict)
    """By mesh: every name its DNS proxies answer, sorted by name (reconciler/mesh/vips.py)."""
    vips: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(mesh, hostname entry) → VIP, the allocation to persist (reconciler/mesh/vips.py)."""
    addresses: Mapping[tuple[str, str, str], ResourceAddresses] = field(default_factory=dict)
    """(kind, mesh, name) → VIP and hostnames of each MeshService, MeshExternalService and
    MeshMultiZoneService: their `status.vips` and `status.addresses` (reconciler/mesh/vips.py)."""

    def external_specs(self, mesh: str) -> dict[str, Mapping[str, Any]]:
        """Specs by name; TLS data sources that name a Secret carry its bytes (mesh/secret_data.py)."""
        secrets = self.secrets_of(mesh)
        return {r.name: with_secret_data(r.spec, secrets) for r in self.externals if r.mesh == mesh}

    def secrets_of(self, mesh: str) -> dict[str, Resource]:
        return {name: r for (m, name), r in self.secrets.items() if m == mesh}

    def service_for(self, dp: Dataplane, outbound: Outbound) -> Service | None:
        if outbound.backend_ref is not None:
            kind, name, port = outbound.backend_ref
            if kind == "MeshService":
                return self.services.get((dp.mesh, f"msvc:{name}:{port}"))
            return None
        return self.services.get((dp.mesh, outbound.service))


def _str_map(value: Any) -> FrozenDict:
    if not isinstance(value, Mapping):
        return FrozenDict()
    if isinstance(value, FrozenDict) and all(isinstance(v, str) for v in value.values()):
        return value  # the resource's own (frozen, string keys): no copy per inbound and outbound
    return FrozenDict({str(k): str(v) for k, v in value.items()})


def dataplane_from_resource(resource: Resource, *, registered: bool = False) -> Dataplane:
    """A validated Dataplane resource as the data plane sees it (defaults applied)."""
    spec = resource.spec
    net = spec.get("networking") or {}
    address = str(net.get("address") or "")
    advertised = str(net.get("advertisedAddress") or "")
    inbounds = []
    for raw in net.get("inbound") or ():
        port = int(raw.get("port") or 0)
        listen = str(raw.get("address") or address)
        state = raw.get("state") or "Ready"
        health = raw.get("health")
        ready = state == "Ready" and not (isinstance(health, Mapping) and health.get("ready") is False)
        inbounds.append(
            Inbound(
                address=listen,
                port=port,
                service_address=str(raw.get("serviceAddress") or listen),
                service_port=int(raw.get("servicePort") or port),
                tags=_str_map(raw.get("tags")),
                name=str(raw.get("name") or ""),
                ready=ready,
                ignored=state == "Ignored",
            )
        )
    outbounds = []
    for raw in net.get("outbound") or ():
        tags = _str_map(raw.get("tags"))
        ref = raw.get("backendRef")
        backend = None
        if isinstance(ref, Mapping) and ref.get("kind"):
            backend = (str(ref.get("kind")), str(ref.get("name") or ""), int(ref.get("port") or 0))
        outbounds.append(
            Outbound(
                address=str(raw.get("address") or "127.0.0.1"),
                port=int(raw.get("port") or 0),
                service=tags.get(SERVICE_TAG, "") if backend is None else "",
                tags=tags,
                backend_ref=backend,
            )
        )
    admin = net.get("admin") or {}
    return Dataplane(
        mesh=resource.mesh,
        name=resource.name,
        address=address,
        advertised_address=advertised,
        inbounds=tuple(inbounds),
        outbounds=tuple(outbounds),
        admin_port=int(admin.get("port") or DEFAULT_ADMIN_PORT),
        gateway=net.get("gateway"),
        labels=resource.labels,
        registered=registered,
        transparent_proxying=bool(net.get("transparentProxying") or net.get("transparent_proxying")),
        redirect=redirect_from_spec(net.get("transparentProxying") or net.get("transparent_proxying")),
        probes=probes_from_spec(spec.get("probes")),
    )


def _endpoint(dp: Dataplane, inbound: Inbound) -> Endpoint:
    direct = inbound.port == inbound.service_port and inbound.address == inbound.service_address and not dp.transparent_proxying
    return Endpoint(dp.advertised_address or inbound.address, inbound.port, inbound.tags, dp.name, sidecar=not direct)


def _matches(selector: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    return all(tags.get(k) == v or (v == "*" and k in tags) for k, v in selector.items())


def mesh_service_cluster_name(mesh: str, name: str, port: int) -> str:
    """Kuma's legacy name for a MeshService port: `<mesh>_<name>_<namespace>_<zone>_msvc_<port>`."""
    return f"{mesh}_{name}___msvc_{port}"


DataplaneOf = Callable[[Resource, bool], "Dataplane"]
"""(a Dataplane resource, registered) → its Dataplane: `dataplane_from_resource`, or a cache of it."""


def build_mesh_model(
    resources: Iterable[Resource],
    registered: Iterable[Resource] = (),
    dataplane_of: DataplaneOf | None = None,
    *,
    previous_vips: Mapping[tuple[str, str], str] | None = None,
) -> MeshModel:
    """The mesh model of an applied snapshot plus dataplanes registered at runtime.

    A registered dataplane with the same identity as one in git is ignored: git wins.
    `dataplane_of` lets the server reuse the Dataplanes of resources it converted before.
    `previous_vips`: an earlier allocation (`MeshModel.vips`) whose VIPs are kept (mesh/vips.py).
    """
    convert = dataplane_of or (lambda r, registered: dataplane_from_resource(r, registered=registered))
    resources = list(resources)
    otel = [r for r in resources if r.type == "MeshOpenTelemetryBackend"]
    meshes = {r.name: MeshInfo(r.name, r, tuple(b for b in otel if b.mesh == r.name)) for r in resources if r.type == "Mesh"}
    dataplanes: dict[str, Dataplane] = {}
    for r in resources:
        if r.type == "Dataplane" and r.mesh in meshes:
            dp = convert(r, False)
            dataplanes[dp.node_id] = dp
    for r in registered:
        if r.mesh in meshes:
            dp = convert(r, True)
            dataplanes.setdefault(dp.node_id, dp)

    endpoints: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
    protocols: dict[tuple[str, str], str] = {}
    for dp in dataplanes.values():
        for inbound in dp.inbounds:
            if not inbound.service:
                continue
            key = (dp.mesh, inbound.service)
            protocols.setdefault(key, inbound.protocol)
            if inbound.ready:
                endpoints[key].append(_endpoint(dp, inbound))
    services: dict[tuple[str, str], Service] = {}
    for key in sorted(protocols):
        eps = tuple(sorted(endpoints.get(key, ()), key=lambda e: (e.address, e.port, e.dataplane)))
        services[key] = Service(key[0], key[1], protocols[key], eps, key[1])

    for r in resources:
        if r.type != "MeshService" or r.mesh not in meshes:
            continue
        selector = _str_map((r.spec.get("selector") or {}).get("dataplaneTags"))
        for port in r.spec.get("ports") or ():
            number = int(port.get("port") or 0)
            target = port.get("targetPort", number)
            protocol = _protocol(port.get("appProtocol"))
            selected: list[Endpoint] = []
            for dp in dataplanes.values():
                if dp.mesh != r.mesh:
                    continue
                for inbound in dp.inbounds:
                    if not inbound.ready or not _matches(selector, inbound.tags):
                        continue
                    if target == inbound.port or (isinstance(target, str) and target == inbound.name):
                        selected.append(_endpoint(dp, inbound))
            key = (r.mesh, f"msvc:{r.name}:{number}")
            services[key] = Service(
                r.mesh,
                r.name,
                protocol,
                tuple(sorted(selected, key=lambda e: (e.address, e.port, e.dataplane))),
                mesh_service_cluster_name(r.mesh, r.name, number),
                mesh_service=r.name,
                port=number,
                port_name=str(port.get("name") or ""),
                labels=r.labels,
            )
    policies = tuple(r for r in resources if r.mesh in meshes and r.type in POLICY_KINDS)
    gateways = tuple(r for r in resources if r.type == "MeshGateway" and r.mesh in meshes)
    secrets = {(r.mesh, r.name): r for r in resources if r.type == "Secret" and r.mesh in meshes}
    identities = tuple(r for r in resources if r.type == "MeshIdentity" and r.mesh in meshes)
    trusts = tuple(r for r in resources if r.type == "MeshTrust" and r.mesh in meshes)
    externals = tuple(r for r in resources if r.type == "MeshExternalService" and r.mesh in meshes)
    inbounds = (ServiceInbound(dp.mesh, i.service, i.port, i.ignored) for dp in dataplanes.values() for i in dp.inbounds)
    found = mesh_addresses({m: info.resource for m, info in meshes.items()}, inbounds, resources, previous_vips)
    virtual = {m: tuple(Outbound(o.address, o.port, o.service, o.tags, o.backend_ref) for o in obs) for m, obs in found.outbounds.items()}
    addresses = (virtual, found.dns, found.vips, found.resources)  # the fields after `externals`, in order (mypy checks their types)
    return MeshModel(meshes, dataplanes, services, policies, gateways, secrets, identities, trusts, externals, *addresses)
