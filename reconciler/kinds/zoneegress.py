"""ZoneEgress: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A ZoneEgress carries a zone's traffic to other zones and to external services. Kuma checks
that it listens on a valid address and port, and that Envoy's admin port does not take the
egress listener's port on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.checks import as_map, get
from reconciler.errors import Path, Violation
from reconciler.kind import Kind
from reconciler.kinds._protojson import check_port_number, text, uint
from reconciler.kinds._proxy_address import admin_port_clashes, check_proxy_address
from reconciler.model import Resource

__all__ = ["KIND", "validate"]

NETWORKING = Path.root("networking")


def validate(resource: Resource) -> list[Violation]:
    networking = as_map(resource.spec).get("networking")
    if networking is not None and not isinstance(networking, Mapping):
        return []
    networking = as_map(networking)
    out = []
    address, port = text(networking.get("address")), uint(networking.get("port"))
    admin_port = uint(get(networking, "admin", "port"))
    if isinstance(networking.get("admin"), Mapping) and admin_port is not None and admin_port_clashes(admin_port, [(address, port or 0)]):
        out.append(
            Violation(
                NETWORKING.field("admin").field("port"),
                "must differ from port: the admin API listens on 127.0.0.1, where the egress listener uses this port",
            )
        )
    out += check_proxy_address(address, NETWORKING.field("address"), required=False)
    out += check_port_number(networking.get("port"), NETWORKING.field("port"))
    return out


KIND = Kind(name="ZoneEgress", scope="Global", flat=True, short_name="ze", validate=validate)
