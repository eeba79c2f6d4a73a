"""Dataplane: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A Dataplane describes one data plane proxy on Universal: its address, the services it fronts
(inbounds) and consumes (outbounds), whether it is a gateway, transparent proxying, zone proxy
listeners embedded in it, metrics overrides and virtual probes. Kuma validates it in one of
three shapes: a delegated gateway (no inbounds or listeners), a builtin gateway (no inbounds,
outbounds, listeners or probes) or a regular proxy; the networking rules are common to all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import as_list, as_map, check_dns1123_subdomain, check_tags, enumerate_list, get
from reconciler.durations import parse_duration
from reconciler.errors import Path, Violation, Violations
from reconciler.gocompat.net import is_go_ip, parse_request_uri
from reconciler.kind import Kind
from reconciler.kinds._mesh_backends import check_prometheus_conf
from reconciler.kinds._protojson import check_port_number, enum_index, quote, tag_map, text, uint
from reconciler.kinds._proxy_address import LOOPBACK, admin_port_clashes, check_proxy_address
from reconciler.kinds.labels import SHAPE_LABEL, SHAPES
from reconciler.model import Resource

__all__ = ["KIND", "validate", "check_proxy_address", "admin_port_clashes", "LOOPBACK", "SUPPORTED_PROTOCOLS"]

NETWORKING = Path.root("networking")

SERVICE_TAG = "kuma.io/service"
PROTOCOL_TAG = "kuma.io/protocol"
SUPPORTED_PROTOCOLS = ("grpc", "http", "http2", "kafka", "tcp")
"""Protocols Kuma names in its messages."""
# Kuma also parses tls and mysql as known protocols, it just does not advertise them.
_KNOWN_PROTOCOLS = frozenset(SUPPORTED_PROTOCOLS) | {"tls", "mysql"}
_BACKEND_KINDS = ("MeshExternalService", "MeshMultiZoneService", "MeshService")
_BACKEND_KINDS_HINT = "invalid value. Available values are: " + ",".join(_BACKEND_KINDS)
_GATEWAY_TYPES = ("DELEGATED", "BUILTIN")
_LISTENER_TYPES = ("Unspecified", "ZoneIngress", "ZoneEgress")
_NAME_PATTERN_MESSAGE = (
    "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)


def _present(obj: Any, camel: str, snake: str) -> str:
    """The spelling the document uses for a field, for paths."""
    return snake if get(obj, camel) is None and get(obj, snake) is not None else camel


def validate(resource: Resource) -> list[Violation]:
    """Kuma's Dataplane validator: the checks common to all proxies, then those of its shape."""
    spec = as_map(resource.spec)
    networking = spec.get("networking")
    if not isinstance(networking, Mapping):
        if networking is None:
            return [Violation(NETWORKING, "must be defined")]
        return []
    out = Violations()
    shape = resource.labels.get(SHAPE_LABEL)
    if shape is not None and shape not in SHAPES:
        out.add(
            Path.root("labels", SHAPE_LABEL),
            f"must be one of {', '.join(SHAPES)}: kuma for one listener per outbound (Kuma's), compact for one listener holding them all",
        )
    out.extend(_both_spellings(networking, NETWORKING, (("transparentProxying", "transparent_proxying"),)))
    out.extend(_check_admin(networking))
    gateway = networking.get("gateway")
    gateway_type = enum_index(get(gateway, "type"), _GATEWAY_TYPES) if isinstance(gateway, Mapping) else None
    if gateway_type == 0:
        out.extend(_forbid(networking, ("inbound", "listeners"), "delegated gateways"))
        out.extend(_check_gateway(gateway))
        out.extend(_check_networking(networking))
        out.extend(_check_probes(spec.get("probes")))
    elif gateway_type == 1:
        out.extend(_forbid(networking, ("inbound", "outbound", "listeners"), "builtin gateways"))
        if spec.get("probes") is not None:
            out.add(Path.root("probes"), "probes cannot be defined for builtin gateways")
        out.extend(_check_gateway(gateway))
        out.extend(_check_networking(networking))
    else:
        out.extend(_check_networking(networking))
        out.extend(_check_probes(spec.get("probes")))
        metrics = spec.get("metrics")
        if isinstance(metrics, Mapping):
            out.extend(_check_metrics(metrics))
        out.extend(_check_listeners(networking))
    return list(out)


def _forbid(networking: Mapping[str, Any], fields: tuple[str, ...], what: str) -> list[Violation]:
    return [Violation(NETWORKING.field(f), f"{f} cannot be defined for {what}") for f in fields if as_list(networking.get(f))]


# -- addresses and ports --------------------------------------------------------------------
def _inbound_interfaces(networking: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(address, port) of each inbound, on the proxy side and on the application side."""
    out = []
    for inbound in as_list(networking.get("inbound")):
        port = uint(get(inbound, "port")) or 0
        proxy_ip = text(get(inbound, "address")) or text(networking.get("address"))
        workload_ip = text(get(inbound, "serviceAddress")) or proxy_ip
        workload_port = uint(get(inbound, "servicePort")) or port
        out += [(proxy_ip, port), (workload_ip, workload_port)]
    return out


def _outbound_interfaces(networking: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [
        (text(get(outbound, "address")) or "127.0.0.1", uint(get(outbound, "port")) or 0)
        for outbound in as_list(networking.get("outbound"))
    ]


def _check_admin(networking: Mapping[str, Any]) -> list[Violation]:
    admin = networking.get("admin")
    if not isinstance(admin, Mapping):
        return []
    port = uint(admin.get("port"))
    if port is None:
        return []
    path = NETWORKING.field("admin").field("port")
    out = []
    if admin_port_clashes(port, _inbound_interfaces(networking)):
        out.append(Violation(path, "must differ from inbound: the admin API listens on 127.0.0.1, where an inbound uses this port"))
    if admin_port_clashes(port, _outbound_interfaces(networking)):
        out.append(Violation(path, "must differ from outbound: the admin API listens on 127.0.0.1, where an outbound uses this port"))
    return out


# -- networking -----------------------------------------------------------------------------
def _check_networking(networking: Mapping[str, Any]) -> list[Violation]:
    out = Violations()
    address = networking.get("address")
    out.extend(check_proxy_address(address, NETWORKING.field("address")))
    for path, inbound in enumerate_list(networking.get("inbound"), NETWORKING.field("inbound")):
        if isinstance(inbound, Mapping) or inbound is None:
            out.extend(_check_inbound(as_map(inbound), path, text(address)))
    for path, outbound in enumerate_list(networking.get("outbound"), NETWORKING.field("outbound")):
        if isinstance(outbound, Mapping) or outbound is None:
            out.extend(_check_outbound(as_map(outbound), path))
    spelling = _present(networking, "transparentProxying", "transparent_proxying")
    out.extend(_check_transparent_proxying(networking.get(spelling), NETWORKING.field(spelling)))
    return list(out)


def _check_inbound(inbound: Mapping[str, Any], path: Path, dp_address: str) -> list[Violation]:
    out = Violations()
    port = uint(inbound.get("port"))
    out.extend(check_port_number(inbound.get("port"), path.field("port")))
    service_port = uint(inbound.get("servicePort"))
    if service_port:
        out.extend(check_port_number(service_port, path.field("servicePort")))
    service_address = text(inbound.get("serviceAddress"))
    address = text(inbound.get("address"))
    # Kuma needs the proxy side and the application side of an inbound to differ.
    same_ports = not service_port or service_port == port
    overlap_message = "serviceAddress and servicePort has to differ from address and port"
    if service_address:
        if not is_go_ip(service_address):
            out.add(path.field("serviceAddress"), "serviceAddress has to be valid IP address")
        if service_address == dp_address and same_ports:
            out.add(path.field("serviceAddress"), overlap_message)
    if address:
        if not is_go_ip(address):
            out.add(path.field("address"), "address has to be valid IP address")
        if address == service_address and same_ports:
            out.add(path.field("serviceAddress"), overlap_message)
    tags = tag_map(inbound.get("tags"))
    out.extend(_check_protocol_tag(tags, path.field("tags")))
    out.extend(check_tags(tags, path.field("tags")))
    # An inbound without tags is the new (tagless) form; one with tags must name its service.
    if isinstance(tags, Mapping) and tags and SERVICE_TAG not in tags:
        out.add(path.field("tags").key(SERVICE_TAG), "tag has to exist")
    protocol = text(inbound.get("protocol"))
    if protocol and protocol.lower() not in _KNOWN_PROTOCOLS:
        out.add(path.field("protocol"), f'has an invalid value "{protocol}". Allowed values: ' + ", ".join(SUPPORTED_PROTOCOLS))
    out.extend(_check_service_probe(inbound.get("serviceProbe"), path.field("serviceProbe")))
    return list(out)


def _check_protocol_tag(tags: Any, path: Path) -> list[Violation]:
    value = get(tags, PROTOCOL_TAG)
    if not isinstance(value, str) or value.lower() in _KNOWN_PROTOCOLS:
        return []
    hint = ", ".join(SUPPORTED_PROTOCOLS)
    return [Violation(path.key(PROTOCOL_TAG), f'tag "{PROTOCOL_TAG}" has an invalid value "{value}". Allowed values: {hint}')]


def _check_service_probe(probe: Any, path: Path) -> list[Violation]:
    if not isinstance(probe, Mapping):
        return []
    out = []
    for field in ("interval", "timeout"):
        value = probe.get(field)
        if isinstance(value, str):
            seconds = parse_duration(value)
            # Kuma rejects a zero duration; a negative one makes no sense to Envoy either.
            if seconds is not None and seconds <= 0:
                out.append(Violation(path.field(field), "must have a positive value"))
    thresholds = (("unhealthyThreshold", "unhealthy_threshold"), ("healthyThreshold", "healthy_threshold"))
    out.extend(_both_spellings(probe, path, thresholds))
    for camel, snake in thresholds:
        spelling = _present(probe, camel, snake)
        if probe.get(spelling) is not None and uint(probe.get(spelling)) == 0:
            out.append(Violation(path.field(spelling), "must have a positive value"))
    return out


def _check_outbound(outbound: Mapping[str, Any], path: Path) -> list[Violation]:
    out = Violations()
    out.extend(check_port_number(outbound.get("port"), path.field("port")))
    address = text(outbound.get("address"))
    if address and not is_go_ip(address):
        out.add(path.field("address"), "address has to be valid IP address")
    ref = outbound.get("backendRef")
    tags = tag_map(outbound.get("tags"))
    has_tags = isinstance(tags, Mapping) and bool(tags)
    ref_path = path.field("backendRef")
    if isinstance(ref, Mapping):
        kind = text(ref.get("kind"))
        if kind not in _BACKEND_KINDS:
            out.add(ref_path.field("kind"), _BACKEND_KINDS_HINT)
        if not text(ref.get("name")) and not as_map(ref.get("labels")):
            out.add(ref_path, "either 'name' or 'labels' should be specified")
        # A MeshExternalService takes its port from its endpoints.
        if kind != "MeshExternalService":
            out.extend(check_port_number(ref.get("port"), ref_path.field("port")))
        if has_tags:
            out.add(ref_path, "both backendRef and tags/service cannot be defined")
    elif not has_tags:
        out.add(path.field("tags"), f'mandatory tag "{SERVICE_TAG}" is missing')
    else:
        out.extend(check_tags(tags, path.field("tags"), require_service=True))
    return list(out)


_TP_SPELLINGS = (
    ("redirectPortInbound", "redirect_port_inbound"),
    ("redirectPortOutbound", "redirect_port_outbound"),
    ("directAccessServices", "direct_access_services"),
    ("reachableServices", "reachable_services"),
    ("ipFamilyMode", "ip_family_mode"),
    ("reachableBackends", "reachable_backends"),
)


def _check_transparent_proxying(tp: Any, path: Path) -> list[Violation]:
    spelling = _present(tp, "reachableBackends", "reachable_backends")
    refs_path = path.field(spelling).field("refs")
    out = Violations()
    out.extend(_both_spellings(tp, path, _TP_SPELLINGS))
    for rpath, ref in enumerate_list(get(tp, spelling, "refs"), refs_path):
        if not isinstance(ref, Mapping):
            continue
        if text(ref.get("kind")) not in _BACKEND_KINDS:
            out.add(rpath.field("kind"), _BACKEND_KINDS_HINT)
        name, namespace = text(ref.get("name")), text(ref.get("namespace"))
        labels = as_map(ref.get("labels"))
        if name:
            out.extend(_check_identifier(name, rpath.field("name")))
        if not name and not namespace and not labels:
            out.add(rpath.field("name"), "name or labels are required")
        if not name and namespace:
            out.add(rpath.field("name"), "name is required, when namespace is defined")
        if (name or namespace) and labels:
            out.add(rpath.field("labels"), "labels cannot be defined when name is specified")
    return list(out)


def _check_identifier(name: str, path: Path) -> list[Violation]:
    if len(name) > 253:
        return [Violation(path, "value length must less or equal 253")]
    if check_dns1123_subdomain(name, path):
        return [Violation(path, _NAME_PATTERN_MESSAGE)]
    return []


# -- gateway, listeners, probes, metrics ------------------------------------------------------
def _check_gateway(gateway: Any) -> list[Violation]:
    """Called only for a gateway given as a map (its type decides the Dataplane's shape)."""
    path = NETWORKING.field("gateway").field("tags")
    tags = tag_map(get(gateway, "tags"))
    out = []
    protocol = get(tags, PROTOCOL_TAG)
    if isinstance(protocol, str) and protocol.lower() != "tcp":
        out.append(Violation(path.key(PROTOCOL_TAG), f"other values than tcp are not allowed, provided value {quote(protocol)}"))
    # A gateway without tags is the new (tagless) form; one with tags must name its service.
    out.extend(check_tags(tags, path, require_service=isinstance(tags, Mapping) and bool(tags)))
    return out


def _check_listeners(networking: Mapping[str, Any]) -> list[Violation]:
    path = NETWORKING.field("listeners")
    inbounds = [as_map(i) for i in as_list(networking.get("inbound"))]
    names = {text(i.get("name")) or str(uint(i.get("port")) or 0) for i in inbounds}
    inbound_keys = {f"{text(i.get('address')) or text(networking.get('address'))}:{uint(i.get('port')) or 0}" for i in inbounds}
    seen: dict[str, int | None] = {}
    out = Violations()
    for lpath, listener in enumerate_list(networking.get("listeners"), path):
        if not isinstance(listener, Mapping) and listener is not None:
            continue
        listener = as_map(listener)
        kind = enum_index(listener.get("type"), _LISTENER_TYPES)
        if kind == 0:
            out.add(lpath.field("type"), "type must be ZoneIngress or ZoneEgress")
        address = text(listener.get("address"))
        out.extend(check_proxy_address(listener.get("address"), lpath.field("address")))
        out.extend(check_port_number(listener.get("port"), lpath.field("port")))
        name = text(listener.get("name"))
        if name:
            if name in names:
                out.add(lpath.field("name"), f'name "{name}" must be unique across inbounds and listeners')
            names.add(name)
        key = f"{address}:{uint(listener.get('port')) or 0}"
        if key in seen:
            if seen[key] == kind:
                out.add(lpath, f"address:port {key} is already used by another listener")
            else:
                out.add(lpath, f"address:port {key} is used by listeners of different types")
        else:
            seen[key] = kind
        if key in inbound_keys:
            out.add(lpath, f"address:port {key} collides with an inbound listener")
    return list(out)


def _check_probes(probes: Any) -> list[Violation]:
    if not isinstance(probes, Mapping):
        return []
    path = Path.root("probes")
    out = check_port_number(probes.get("port"), path.field("port"))
    for epath, endpoint in enumerate_list(probes.get("endpoints"), path.field("endpoints")):
        if not isinstance(endpoint, Mapping) and endpoint is not None:
            continue
        out += _both_spellings(endpoint, epath, (("inboundPort", "inbound_port"), ("inboundPath", "inbound_path")))
        port_field = _present(endpoint, "inboundPort", "inbound_port")
        out += check_port_number(get(endpoint, port_field), epath.field(port_field))
        for field in (_present(endpoint, "inboundPath", "inbound_path"), "path"):
            value = get(endpoint, field)
            if (value is None or isinstance(value, str)) and not parse_request_uri(text(value))[0]:
                out.append(Violation(epath.field(field), "should be a valid URL Path" + _path_hint(text(value))))
    return out


def _path_hint(value: str) -> str:
    if not value:
        return ", e.g. /healthz"
    if not value.startswith("/"):
        return " starting with /, e.g. /" + value.lstrip("/")
    return ": every % must start a two-digit hex escape such as %20"


def _check_metrics(metrics: Mapping[str, Any]) -> list[Violation]:
    path = Path.root("metrics")
    kind = metrics.get("type")
    if kind == "prometheus":
        return check_prometheus_conf(metrics.get("conf"), path.field("conf"))
    if isinstance(kind, str) or kind is None:
        return [Violation(path.field("type"), 'unknown backend type. Available backends: "prometheus"')]
    return []


def _both_spellings(obj: Any, path: Path, pairs: tuple[tuple[str, str], ...]) -> list[Violation]:
    """Fields written under both their JSON and protobuf names: Kuma keeps the JSON one, silently."""
    return [
        Violation(path.field(snake), f"{snake} is the same field as {camel}; Kuma uses {camel} and ignores this one", "warning")
        for camel, snake in pairs
        if get(obj, camel) is not None and get(obj, snake) is not None
    ]


KIND = Kind(name="Dataplane", scope="Mesh", flat=True, short_name="dp", validate=validate)
