"""ZoneIngress: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A ZoneIngress receives traffic from other zones for the services of its zone. Kuma checks
where it listens (a valid address and port), that the advertised address and port come as a
pair, that Envoy's admin port does not take its listener's port on 127.0.0.1, and that every
available service names its `kuma.io/service`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import as_map, check_tags, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._protojson import check_port_number, tag_map, text, uint
from reconciler.kinds._proxy_address import admin_port_clashes, check_proxy_address
from reconciler.model import Resource

__all__ = ["KIND", "validate"]

NETWORKING = Path.root("networking")


def validate(resource: Resource) -> list[Violation]:
    spec = as_map(resource.spec)
    out = Violations()
    networking = spec.get("networking")
    if networking is None or isinstance(networking, Mapping):
        out.extend(_check_networking(as_map(networking)))
    for path, service in enumerate_list(spec.get("availableServices"), Path.root("availableServices")):
        out.extend(check_tags(tag_map(get(service, "tags")), path.field("tags"), require_service=True))
    return list(out)


def _check_networking(networking: Mapping[str, Any]) -> list[Violation]:
    out = []
    address, advertised_address = text(networking.get("address")), text(networking.get("advertisedAddress"))
    port, advertised_port = uint(networking.get("port")), uint(networking.get("advertisedPort"))
    admin_port = uint(get(networking, "admin", "port"))
    listeners = [(address, port or 0), (advertised_address, advertised_port or 0)]
    if isinstance(networking.get("admin"), Mapping) and admin_port is not None and admin_port_clashes(admin_port, listeners):
        out.append(
            Violation(
                NETWORKING.field("admin").field("port"),
                "must differ from port: the admin API listens on 127.0.0.1, where the ingress listener uses this port",
            )
        )
    if not advertised_address and advertised_port:
        out.append(Violation(NETWORKING.field("advertisedAddress"), "has to be defined with advertisedPort"))
    if advertised_port == 0 and advertised_address:
        out.append(Violation(NETWORKING.field("advertisedPort"), "has to be defined with advertisedAddress"))
    out += check_proxy_address(address, NETWORKING.field("address"), required=False)
    out += check_proxy_address(advertised_address, NETWORKING.field("advertisedAddress"), required=False)
    out += check_port_number(networking.get("port"), NETWORKING.field("port"))
    if advertised_port:
        out += check_port_number(advertised_port, NETWORKING.field("advertisedPort"))
    return out


KIND = Kind(name="ZoneIngress", scope="Global", flat=True, short_name="zi", validate=validate)
