"""MeshGateway: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshGateway configures Kuma's builtin gateway: `selectors` pick the builtin gateway
dataplanes (by their `kuma.io/service` and other tags) and `conf.listeners` are the ports
they open. It is a proto kind, so its fields sit at the top level of the document and the
protobuf defaults apply: a listener without `port` has port 0, without `protocol` has
protocol NONE, a `tls` block without `mode` has mode NONE.

Listeners on one port are merged into one Envoy listener, so they must agree on the
protocol and the connection limit and must not repeat a hostname.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from reconciler.checks import as_list, as_map, check_hostname, check_selector, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource

__all__ = ["KIND", "validate", "PROTOCOLS", "TLS_MODES", "RESERVED_TAGS"]

PROTOCOLS = ("HTTP", "HTTPS", "TCP", "TLS")
TLS_MODES = ("TERMINATE", "PASSTHROUGH")
# Tags that describe a dataplane, not a gateway or listener: routes could never match them.
RESERVED_TAGS = ("kuma.io/external-service-name", "kuma.io/protocol", "kuma.io/service", "kuma.io/zone")
_DATA_SOURCE_FIELDS = ("secret", "file", "inline", "inlineString")
_MAX_CERTIFICATES = 2

ROOT = Path()


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshGateway validator."""
    spec = as_map(resource.spec)
    out = Violations()
    listeners = as_list(get(spec, "conf", "listeners"))
    cross_mesh = any(get(listener, "crossMesh") is True for listener in listeners)
    out.extend(_check_selectors(spec.get("selectors"), ROOT.field("selectors"), single=cross_mesh))
    out.extend(_check_gateway_tags(spec.get("tags"), ROOT.field("tags")))
    out.extend(_check_conf(spec.get("conf"), ROOT.field("conf")))
    return list(out)


def _check_selectors(selectors: Any, path: Path, *, single: bool) -> list[Violation]:
    out: list[Violation] = []
    if not as_list(selectors):
        out.append(Violation(path, "must have at least one element"))
    for i, (item_path, selector) in enumerate(enumerate_list(selectors, path)):
        out += check_selector(get(selector, "match"), item_path.field("match"), require_service=True, require_one=True)
        if i > 0 and single:
            # A crossMesh gateway is addressed by one service from other meshes.
            out.append(Violation(item_path, "there can be at most one selector when a listener is crossMesh"))
    return out


def _check_gateway_tags(tags: Any, path: Path) -> list[Violation]:
    """Gateway and listener tags: selector syntax, without the dataplane-owned tags."""
    out = check_selector(tags, path)
    for key in sorted(as_map(tags)):
        if key in RESERVED_TAGS:
            out.append(Violation(path.key(key), f'tag name must not be "{key}"'))
    return out


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    if not isinstance(conf, Mapping):
        return [Violation(path, "cannot be empty: a gateway needs conf.listeners")]
    path = path.field("listeners")
    listeners = conf.get("listeners")
    out: list[Violation] = []
    if not as_list(listeners):
        out.append(Violation(path, "cannot be empty: a gateway needs at least one listener"))
    for item_path, listener in enumerate_list(listeners, path):
        out += _check_listener(as_map(listener), item_path)
    out += _check_collapsibility(as_list(listeners), path)
    return out


def _check_listener(listener: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    hostname = listener.get("hostname")
    if hostname:
        out += check_hostname(hostname, path.field("hostname"))
    out += _check_port(listener.get("port"), path.field("port"))
    cross_mesh = listener.get("crossMesh") is True
    tls = listener.get("tls")
    protocol = listener.get("protocol")
    if protocol is None:
        out.append(Violation(path.field("protocol"), "cannot be empty: one of " + ", ".join(PROTOCOLS)))
    elif protocol == "HTTPS":
        if cross_mesh:
            out.append(Violation(path.field("protocol"), "protocol is not supported with crossMesh; use HTTP"))
        elif not isinstance(tls, Mapping):
            out.append(Violation(path.field("tls"), "cannot be empty on an HTTPS listener"))
        elif tls.get("mode") == "PASSTHROUGH":
            out.append(
                Violation(
                    path.field("tls").field("mode"), "mode is not supported on HTTPS listeners; use a TLS listener to pass TLS through"
                )
            )
    if isinstance(tls, Mapping):
        out += _check_tls(tls, path.field("tls"), cross_mesh=cross_mesh)
    out += _check_gateway_tags(listener.get("tags"), path.field("tags"))
    return out


def _proto_uint(value: Any) -> int | None:
    """A protobuf integer as JSON carries it: unset (0), a number, or digits in a string."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None  # not an integer: the schema reports it


def _check_port(port: Any, path: Path) -> list[Violation]:
    value = _proto_uint(port)
    if value is not None and not 1 <= value <= 65535:
        return [Violation(path, "port must be in the range [1, 65535]")]
    return []


def _check_tls(tls: Mapping[str, Any], path: Path, *, cross_mesh: bool) -> list[Violation]:
    mode = tls.get("mode")
    certificates = as_list(tls.get("certificates"))
    out: list[Violation] = []
    if cross_mesh:
        # Cross-mesh traffic is secured by the meshes' own mTLS.
        if mode is not None or certificates:
            out.append(Violation(path, "must be empty with crossMesh"))
    elif mode is None:
        out.append(Violation(path.field("mode"), "cannot be empty: one of " + ", ".join(TLS_MODES)))
    elif mode == "TERMINATE":
        if not certificates:
            out.append(Violation(path.field("certificates"), "cannot be empty in TLS termination mode"))
        elif len(certificates) > _MAX_CERTIFICATES:
            out.append(Violation(path.field("certificates"), "cannot have more than 2 certificates (one RSA and one ECDSA)"))
    for item_path, source in enumerate_list(tls.get("certificates"), path.field("certificates")):
        if source is None:
            # Kuma cannot read a null list item as a DataSource; there is no bundle to load.
            out.append(Violation(item_path, "must be a data source (secret, file, inline or inlineString), not null"))
        out += _check_data_source(source, item_path)
    return out


def _check_data_source(source: Any, path: Path) -> list[Violation]:
    """A protobuf DataSource is a oneof: two members at once do not even parse."""
    if not isinstance(source, Mapping):
        return []
    present = [name for name in _DATA_SOURCE_FIELDS if source.get(name) is not None]
    out: list[Violation] = []
    if len(present) > 1:
        out.append(Violation(path, "only one of " + ", ".join(f"'{p}'" for p in present) + " can be set"))
    inline = source.get("inline")
    if isinstance(inline, str) and not _is_base64(inline):
        out.append(Violation(path.field("inline"), "must be base64-encoded bytes; use inlineString for plain text"))
    return out


_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def _is_base64(text: str) -> bool:
    """protobuf JSON reads bytes in standard or URL-safe base64, padded or not."""
    compact = text.strip()
    if not _BASE64.match(compact):
        return False
    body = compact.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_collapsibility(listeners: Any, path: Path) -> list[Violation]:
    """Listeners sharing a port become one Envoy listener; they must be compatible."""
    protocols: dict[int, dict[str, list[int]]] = {}
    hostnames: dict[int, dict[str, list[int]]] = {}
    limits: dict[int, tuple[set[int], list[int]]] = {}
    for i, raw in enumerate(as_list(listeners)):
        listener = as_map(raw)
        port = _proto_uint(listener.get("port"))
        if port is None:
            continue
        protocol = listener.get("protocol") or "NONE"
        protocols.setdefault(port, {}).setdefault(str(protocol), []).append(i)
        hostname = listener.get("hostname") or "*"
        hostnames.setdefault(port, {}).setdefault(str(hostname), []).append(i)
        limit = _proto_uint(get(listener, "resources", "connectionLimit"))
        if limit:
            values, indexes = limits.setdefault(port, (set(), []))
            values.add(limit)
            indexes.append(i)
    out: list[Violation] = []
    for port, by_protocol in protocols.items():
        if len(by_protocol) > 1:
            names = ", ".join(sorted(by_protocol))
            for indexes in by_protocol.values():
                out += [
                    Violation(path.index(i), f"protocol conflicts with other listeners on this port ({port}: {names})") for i in indexes
                ]
    for port, by_hostname in hostnames.items():
        for hostname, indexes in by_hostname.items():
            if len(indexes) > 1:
                out += [Violation(path.index(i), f'multiple listeners for hostname "{hostname}" on this port ({port})') for i in indexes]
    for port, (values, indexes) in limits.items():
        if len(values) > 1:
            out += [
                Violation(
                    path.index(i).field("resources").field("connectionLimit"),
                    f"conflicting values for this port ({port}); use one connectionLimit",
                )
                for i in indexes
            ]
    return out


KIND = Kind(name="MeshGateway", scope="Mesh", flat=True, short_name="mgw", validate=validate)
