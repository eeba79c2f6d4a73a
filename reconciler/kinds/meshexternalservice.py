"""MeshExternalService: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshExternalService gives mesh workloads a hostname and port (`match`) for something
outside the mesh and says where that traffic really goes (`endpoints`), optionally
originating TLS (`tls`). With an `extension`, endpoints and tls belong to the extension and
Kuma does not check them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_NOT_BE_EMPTY, as_map, enumerate_list, get, must_be_one_of
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._naming import check_name_length, destination_deprecations, is_go_dns_name, is_go_ip
from reconciler.model import Resource

__all__ = ["KIND", "validate", "MATCH_PROTOCOLS", "TLS_VERSIONS", "VERIFICATION_MODES", "SAN_MATCH_TYPES", "check_tls_version"]

SPEC = Path.root("spec")
MAX_NAME_LENGTH = 63
MATCH_TYPE = "HostnameGenerator"
MATCH_PROTOCOLS = ("tcp", "grpc", "http", "http2")
TLS_VERSIONS = ("TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13")
VERIFICATION_MODES = ("SkipSAN", "SkipCA", "SkipAll", "Secured")
SAN_MATCH_TYPES = ("Prefix", "Exact")
_DATA_SOURCES = ("caCert", "clientCert", "clientKey")


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshExternalService validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_name_length(resource.name, resource.labels, MAX_NAME_LENGTH))
    out.extend(_check_match(as_map(spec.get("match")), SPEC.field("match")))
    extension = spec.get("extension")
    if extension is None:
        for path, endpoint in enumerate_list(spec.get("endpoints"), SPEC.field("endpoints")):
            out.extend(_check_endpoint(as_map(endpoint), path))
        if isinstance(spec.get("tls"), Mapping):
            out.extend(_check_tls(spec["tls"], SPEC.field("tls")))
    elif not get(extension, "type"):
        out.add(SPEC.field("extension").field("type"), MUST_NOT_BE_EMPTY)
    port = get(spec, "match", "port")
    sections = [(str(port), SPEC.field("match").field("port"))] if isinstance(port, int) and not isinstance(port, bool) else []
    out.extend(
        destination_deprecations(
            "MeshExternalService", "extsvc", resource.name, resource.mesh, resource.labels, sections, name_limit=MAX_NAME_LENGTH
        )
    )
    return list(out)


def _port_ok(port: Any) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


def _check_match(match: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    match_type = match.get("type")
    if match_type not in (None, "", MATCH_TYPE):
        out.append(Violation(path.field("type"), f"unrecognized type '{match_type}' - only '{MATCH_TYPE}' is supported"))
    if not _port_ok(match.get("port")):
        out.append(Violation(path.field("port"), "port must be a valid (1-65535)"))
    # An omitted protocol defaults to tcp.
    if match.get("protocol") is not None and match.get("protocol") not in MATCH_PROTOCOLS:
        out.append(Violation(path.field("protocol"), must_be_one_of("protocol", MATCH_PROTOCOLS)))
    return out


def _check_endpoint(endpoint: Mapping[str, Any], path: Path) -> list[Violation]:
    address = endpoint.get("address")
    if not (is_go_ip(address) or is_go_dns_name(address)):
        return [Violation(path.field("address"), "address has to be a valid IP or hostname")]
    if not _port_ok(endpoint.get("port")):
        return [Violation(path.field("port"), "port must be a valid (1-65535)")]
    return []


def _check_tls(tls: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    if isinstance(tls.get("version"), Mapping):
        out += check_tls_version(tls["version"], path.field("version"))
    verification = tls.get("verification")
    if isinstance(verification, Mapping):
        out += _check_verification(verification, path.field("verification"))
    return out


def check_tls_version(version: Mapping[str, Any], path: Path) -> list[Violation]:
    """Both ends among the known versions, and min not above max (TLSAuto is no bound)."""
    out: list[Violation] = []
    bounds = {}
    for end in ("min", "max"):
        value = version.get(end)
        if value is None:
            continue
        if value not in TLS_VERSIONS:
            out.append(Violation(path.field(end), must_be_one_of(end, TLS_VERSIONS)))
        elif value != "TLSAuto":
            bounds[end] = TLS_VERSIONS.index(value)
    if len(bounds) == 2 and bounds["min"] > bounds["max"]:
        out.append(Violation(path.field("min"), f"min version must be lower than max ({version.get('min')} > {version.get('max')})"))
    return out


def _check_verification(verification: Mapping[str, Any], path: Path) -> list[Violation]:
    out: list[Violation] = []
    server_name = verification.get("serverName")
    if server_name is not None and not is_go_dns_name(server_name):
        out.append(Violation(path.field("serverName"), "must be a valid DNS name"))
    mode = verification.get("mode")
    if mode not in (None, "") and mode not in VERIFICATION_MODES:
        out.append(Violation(path.field("mode"), must_be_one_of("mode", VERIFICATION_MODES)))
    for san_path, san in enumerate_list(verification.get("subjectAltNames"), path.field("subjectAltNames")):
        san_type = as_map(san).get("type")
        # Kuma checks the type after defaulting it to Exact, so only a wrong value fails.
        if san_type is not None and san_type not in SAN_MATCH_TYPES:
            out.append(Violation(san_path.field("type"), must_be_one_of("type", SAN_MATCH_TYPES)))
    has_cert = verification.get("clientCert") is not None
    has_key = verification.get("clientKey") is not None
    if has_cert and not has_key:
        out.append(Violation(path.field("clientKey"), "must be defined when clientCert is defined"))
    if has_key and not has_cert:
        out.append(Violation(path.field("clientCert"), "must be defined when clientKey is defined"))
    for name in _DATA_SOURCES:
        out += _check_inline(verification.get(name), path.field(name))
    return out


def _check_inline(source: Any, path: Path) -> list[Violation]:
    """`inline` holds bytes, which JSON carries as standard base64."""
    inline = as_map(source).get("inline")
    if not isinstance(inline, str):
        return []
    try:
        base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError):
        return [Violation(path.field("inline"), "must be base64-encoded bytes; use inlineString for plain text")]
    return []


KIND = Kind(name="MeshExternalService", scope="Mesh", flat=False, short_name="extsvc", validate=validate)
