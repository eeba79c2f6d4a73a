"""MeshOpenTelemetryBackend: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshOpenTelemetryBackend names an OpenTelemetry collector that MeshTrace, MeshMetric and
MeshAccessLog can reference. Everything is optional (an empty spec means the collector on
the dataplane's node, port 4317, gRPC). What is set must make sense: a non-empty address
that is an IP or DNS name, a port in 1-65535, and a base path only for the http protocol,
starting with `/` and without query or fragment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_NOT_BE_EMPTY, as_map, must_be_one_of
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._naming import is_go_dns_name, is_go_ip
from reconciler.model import Resource

__all__ = ["KIND", "validate", "PROTOCOLS", "ENV_MODES", "ENV_PRECEDENCES"]

SPEC = Path.root("spec")
PROTOCOLS = ("grpc", "http")
ENV_MODES = ("Disabled", "Optional", "Required")
ENV_PRECEDENCES = ("ExplicitFirst", "EnvFirst")
DEFAULT_PROTOCOL = "grpc"


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshOpenTelemetryBackend validator."""
    spec = as_map(resource.spec)
    out = Violations()
    protocol = spec.get("protocol")
    if protocol is None:
        protocol = DEFAULT_PROTOCOL
    endpoint = spec.get("endpoint")
    if isinstance(endpoint, Mapping):
        out.extend(_check_endpoint(endpoint, protocol, SPEC.field("endpoint")))
    if protocol != "" and protocol not in PROTOCOLS:
        out.add(SPEC.field("protocol"), must_be_one_of("protocol", PROTOCOLS))
    env = spec.get("env")
    if isinstance(env, Mapping):
        out.extend(_check_env(env, SPEC.field("env")))
    return list(out)


def _check_endpoint(endpoint: Mapping[str, Any], protocol: Any, path: Path) -> list[Violation]:
    out: list[Violation] = []
    address = endpoint.get("address")
    if address == "":
        out.append(Violation(path.field("address"), MUST_NOT_BE_EMPTY + "; omit it to use the node's address"))
    elif address is not None and not (is_go_ip(address) or is_go_dns_name(address)):
        out.append(Violation(path.field("address"), "address has to be a valid IP or hostname"))
    port = endpoint.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
        out.append(Violation(path.field("port"), "port must be a valid (1-65535)"))
    out += _check_path(endpoint.get("path"), protocol, path.field("path"))
    return out


def _check_path(value: Any, protocol: Any, path: Path) -> list[Violation]:
    if not isinstance(value, str) or value == "":
        return []
    if protocol in ("grpc", ""):
        return [Violation(path, "must not be set when protocol is grpc; a base path applies to the http protocol only")]
    out = []
    if not value.startswith("/"):
        out.append(Violation(path, "must start with /"))
    if "?" in value or "#" in value:
        out.append(Violation(path, "must not contain query or fragment"))
    return out


def _check_env(env: Mapping[str, Any], path: Path) -> list[Violation]:
    out = []
    mode = env.get("mode")
    if mode not in (None, "") and mode not in ENV_MODES:
        out.append(Violation(path.field("mode"), must_be_one_of("mode", ENV_MODES)))
    precedence = env.get("precedence")
    if precedence not in (None, "") and precedence not in ENV_PRECEDENCES:
        out.append(Violation(path.field("precedence"), must_be_one_of("precedence", ENV_PRECEDENCES)))
    return out


KIND = Kind(name="MeshOpenTelemetryBackend", scope="Mesh", flat=False, short_name="motb", validate=validate)
