"""Name and mesh rules every resource obeys (Kuma's ValidateMeta)."""

from __future__ import annotations

import re

from reconciler.errors import Path, Violation
from reconciler.model import Resource

__all__ = ["meta_violations"]

_IDENTIFIER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IDENTIFIER_MESSAGE = (
    "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character"
)
# Meshes created before Kuma tightened its names may contain '_'; Kuma still accepts them here.
_MESH = re.compile(r"^[0-9a-z-_.]*$")
_MESH_MESSAGE = "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols."


def _identifier(value: str, path: Path, pattern: re.Pattern[str], message: str) -> list[Violation]:
    if value == "":
        return [Violation(path, "cannot be empty")]
    if len(value) > 253:
        return [Violation(path, "value length must less or equal 253")]
    if not pattern.match(value):
        return [Violation(path, message)]
    return []


def meta_violations(resource: Resource) -> list[Violation]:
    out = _identifier(resource.name, Path.root("name"), _IDENTIFIER, _IDENTIFIER_MESSAGE)
    if resource.mesh:
        out += _identifier(resource.mesh, Path.root("mesh"), _MESH, _MESH_MESSAGE)
    return out
