"""MeshMultiZoneService: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshMultiZoneService groups the MeshServices of several zones, picked by labels, into one
destination with its own hostname and VIP. An empty label selector would pick every
MeshService of the mesh, so Kuma requires labels; it also requires at least one port.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import MUST_NOT_BE_EMPTY, as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._naming import destination_deprecations
from reconciler.model import Resource

__all__ = ["KIND", "validate", "SUPPORTED_PROTOCOLS"]

SPEC = Path.root("spec")
# The application protocols Kuma lists to users (its SupportedProtocols).
SUPPORTED_PROTOCOLS = ("grpc", "http", "http2", "kafka", "tcp")
# Kuma's ValidateKRI limits names to DNS labels; MeshMultiZoneService has no length error of its own.
_NAME_LIMIT = 253


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshMultiZoneService validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    if not as_map(get(spec, "selector", "meshService", "matchLabels")):
        out.add(
            SPEC.field("selector").field("meshService").field("matchLabels"),
            "cannot be empty: an empty selector would match every MeshService",
        )
    if not as_list(spec.get("ports")):
        out.add(SPEC.field("ports"), "cannot be empty: list at least one port")
    for path, port in enumerate_list(spec.get("ports"), SPEC.field("ports")):
        out.extend(_check_port(as_map(port), path))
    out.extend(
        destination_deprecations(
            "MeshMultiZoneService",
            "mzsvc",
            resource.name,
            resource.mesh,
            resource.labels,
            _sections(spec.get("ports")),
            name_limit=_NAME_LIMIT,
        )
    )
    return list(out)


def _check_port(port: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    if port.get("name") == "":
        out.append(Violation(path.field("name"), MUST_NOT_BE_EMPTY))
    # An omitted appProtocol defaults to tcp.
    protocol = port.get("appProtocol")
    if protocol is not None and protocol not in SUPPORTED_PROTOCOLS:
        out.append(Violation(path.field("appProtocol"), "appProtocol must be one of: " + ", ".join(SUPPORTED_PROTOCOLS)))
    return out


def _sections(ports: Any) -> list[tuple[str, Path]]:
    """Each port's section name (its name, else its number) and where it is written."""
    out = []
    for path, port in enumerate_list(ports, SPEC.field("ports")):
        name = as_map(port).get("name")
        number = as_map(port).get("port")
        if isinstance(name, str) and name:
            out.append((name, path.field("name")))
        elif isinstance(number, int) and not isinstance(number, bool):
            out.append((str(number), path.field("port")))
    return out


KIND = Kind(name="MeshMultiZoneService", scope="Mesh", flat=False, short_name="mzsvc", validate=validate)
