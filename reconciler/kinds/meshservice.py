"""MeshService: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshService names a set of dataplanes (by tags, by labels, or one dataplane by name) and
the ports they serve. Kuma deliberately validates little of it (it is usually generated),
so the rules are few: a display name of at most 63 characters and at most one kind of
selector. Kuma also warns, without rejecting, about names and ports that would make
invalid SNIs; those come back here as warnings.
"""

from __future__ import annotations

from typing import Any

from reconciler.checks import as_map, enumerate_list
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.kinds._naming import check_name_length, destination_deprecations
from reconciler.model import Resource

__all__ = ["KIND", "validate", "SELECTOR_KINDS", "MAX_NAME_LENGTH"]

SPEC = Path.root("spec")
SELECTOR_KINDS = ("dataplaneTags", "dataplaneRef", "dataplaneLabels")
MAX_NAME_LENGTH = 63


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshService validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    out.extend(check_name_length(resource.name, resource.labels, MAX_NAME_LENGTH))
    out.extend(_check_selector(spec.get("selector"), SPEC.field("selector")))
    out.extend(
        destination_deprecations(
            "MeshService",
            "msvc",
            resource.name,
            resource.mesh,
            resource.labels,
            _sections(spec.get("ports")),
            name_limit=MAX_NAME_LENGTH,
        )
    )
    return list(out)


def _check_selector(selector: Any, path: Path) -> list[Violation]:
    present = [k for k in SELECTOR_KINDS if as_map(selector).get(k) is not None]
    if len(present) > 1:
        return [
            Violation(path, "must specify only one of: dataplaneTags, dataplaneRef, or dataplaneLabels (found " + ", ".join(present) + ")")
        ]
    return []


def _sections(ports: Any) -> list[tuple[str, Path]]:
    """Each port's section name (its name, else its number) and where it is written."""
    out = []
    for path, port in enumerate_list(ports, SPEC.field("ports")):
        name = as_map(port).get("name")
        number = as_map(port).get("port")
        if isinstance(name, str):
            out.append((name, path.field("name")))
        elif isinstance(number, int) and not isinstance(number, bool):
            out.append((str(number), path.field("port")))
    return out


KIND = Kind(name="MeshService", scope="Mesh", flat=False, short_name="msvc", validate=validate)
