"""MeshAccessLog: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshAccessLog sends access logs of the selected proxies to files, TCP collectors or
OpenTelemetry collectors, for outbound traffic (`to[]`), inbound traffic (`rules[]`,
optionally matched by the client's SPIFFE ID or SNI) or the deprecated `from[]` list.

The Go-compatible address parsers it shares with MeshMetric and MeshTrace are in
core/gourl.py, the OpenTelemetry backend checks in core/otel.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, MUST_NOT_BE_EMPTY, as_list, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.gourl import is_file_path, is_url
from reconciler.policies.core.otel import check_otel_attribute_name, check_otel_backend, otel_endpoint_deprecation
from reconciler.policies.core.targetref import (
    affects_inbounds,
    check_items,
    check_match,
    check_target_ref,
    deprecated_top_level_kind,
    top_level_kind,
)

__all__ = [
    "KIND",
    "validate",
    "TOP_LEVEL_KINDS",
    "TO_KINDS",
    "GATEWAY_TO_KINDS",
    "FROM_KINDS",
]

SPEC = Path.root("spec")

TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane")
TO_KINDS = ("Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService", "MeshHTTPRoute")
GATEWAY_TO_KINDS = ("Mesh",)
"""`to` kinds when the policy targets a MeshGateway: a gateway logs all its outbound traffic alike."""
FROM_KINDS = ("Mesh",)

_INVALID_FILE_PATH = (
    "file backend requires a valid path: an absolute Unix path like /tmp/access.log or a Windows path like C:\\logs\\access.log"
)


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshAccessLog validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(
        check_target_ref(
            spec.get("targetRef"),
            SPEC.field("targetRef"),
            TOP_LEVEL_KINDS,
            gateway_listener_tags_allowed=True,
            inbound_policy=affects_inbounds(spec),
        )
    )
    has_to, has_from, has_rules = (bool(as_list(spec.get(f))) for f in ("to", "from", "rules"))
    if has_rules and (has_to or has_from):
        out.add(SPEC, "fields 'to' and 'from' must be empty when 'rules' is defined")
    if not (has_rules or has_to or has_from):
        out.add(SPEC, "at least one of 'from', 'to' or 'rules' has to be defined")
    to_kinds = GATEWAY_TO_KINDS if top_level_kind(spec) == "MeshGateway" else TO_KINDS
    out.extend(check_items(spec, SPEC, "to", to_kinds, _check_conf))
    out.extend(check_items(spec, SPEC, "from", FROM_KINDS, _check_conf))
    for path, rule in enumerate_list(spec.get("rules"), SPEC.field("rules")):
        for match_path, match in enumerate_list(get(rule, "matches"), path.field("matches")):
            out.extend(check_match(match, match_path))
        out.extend(_check_conf(get(rule, "default"), path.field("default")))
    out.extend(_deprecations(spec))
    return list(out)


def _check_conf(conf: Any, path: Path) -> list[Violation]:
    """One `default` block: its backends must be listed (an empty list is fine)."""
    backends = get(conf, "backends")
    if backends is None:
        return [Violation(path.field("backends"), MUST_BE_DEFINED)]
    out: list[Violation] = []
    for backend_path, backend in enumerate_list(backends, path.field("backends")):
        out += _check_backend(as_map(backend), backend_path)
    return out


def _check_backend(backend: Mapping[str, Any], path: Path) -> list[Violation]:
    kind = backend.get("type")
    if kind == "File":
        file = backend.get("file")
        if file is None:
            return [Violation(path.field("file"), f"{MUST_BE_DEFINED} when type is File")]
        file = as_map(file)
        out = _check_format(file.get("format"), path.field("file").field("format"))
        file_path = file.get("path")
        if not is_file_path(file_path if isinstance(file_path, str) else ""):
            out.append(Violation(path.field("file").field("path"), _INVALID_FILE_PATH))
        return out
    if kind == "Tcp":
        tcp = backend.get("tcp")
        if tcp is None:
            return [Violation(path.field("tcp"), f"{MUST_BE_DEFINED} when type is Tcp")]
        tcp = as_map(tcp)
        out = _check_format(tcp.get("format"), path.field("tcp").field("format"))
        address = tcp.get("address")
        if not is_url(address if isinstance(address, str) else ""):
            out.append(
                Violation(
                    path.field("tcp").field("address"),
                    "tcp backend requires valid address, like 127.0.0.1:5000 or logstash.example.com:5000",
                )
            )
        return out
    if kind == "OpenTelemetry":
        otel = backend.get("openTelemetry")
        if otel is None:
            return [Violation(path.field("openTelemetry"), f"{MUST_BE_DEFINED} when type is OpenTelemetry")]
        otel = as_map(otel)
        otel_path = path.field("openTelemetry")
        out = check_otel_backend(otel, otel_path)
        for attr_path, attr in enumerate_list(otel.get("attributes"), otel_path.field("attributes")):
            out += check_otel_attribute_name(get(attr, "key"), attr_path.field("key"))
        return out
    return []  # a missing or unknown type is the schema's to report


def _check_format(fmt: Any, path: Path) -> list[Violation]:
    if fmt is None:
        return []
    fmt = as_map(fmt)
    kind = fmt.get("type")
    if kind == "Plain":
        plain = fmt.get("plain")
        if plain is None:
            return [Violation(path.field("plain"), f"{MUST_BE_DEFINED} when type is Plain")]
        if plain == "":
            return [Violation(path.field("plain"), MUST_NOT_BE_EMPTY)]
        return []
    if kind == "Json":
        fields = fmt.get("json")
        if fields is None:
            return [Violation(path.field("json"), f"{MUST_BE_DEFINED} when type is Json")]
        if isinstance(fields, (list, tuple)) and not fields:
            return [Violation(path.field("json"), MUST_NOT_BE_EMPTY)]
        out: list[Violation] = []
        for item_path, item in enumerate_list(fields, path.field("json")):
            key, value = get(item, "key"), get(item, "value")
            if key == "":
                out.append(Violation(item_path.field("key"), "key cannot be empty"))
            if value == "":
                out.append(Violation(item_path.field("value"), "value cannot be empty"))
            if isinstance(key, str) and isinstance(value, str) and not _is_json('{"' + key + '": "' + value + '"}'):
                # Kuma pastes key and value into a JSON object verbatim, so quotes and
                # backslashes must already be escaped the JSON way.
                out.append(Violation(item_path, "is not a valid JSON object: escape quotes and backslashes in key and value"))
        return out
    return []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    if as_list(spec.get("from")):
        out.append(Violation(SPEC.field("from"), "'from' is deprecated; use 'rules' instead", "warning"))
    for section in ("to", "from", "rules"):
        for path, item in enumerate_list(spec.get(section), SPEC.field(section)):
            for backend_path, backend in enumerate_list(get(item, "default", "backends"), path.field("default").field("backends")):
                out += otel_endpoint_deprecation(get(backend, "openTelemetry"), backend_path.field("openTelemetry"))
    out += deprecated_top_level_kind(spec, TOP_LEVEL_KINDS)
    return out


KIND = Kind(name="MeshAccessLog", policy=True, short_name="mal", validate=validate)
