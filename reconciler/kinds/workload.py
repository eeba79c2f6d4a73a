"""Workload: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A Workload groups dataplanes for status, metrics and traces; its spec is empty and Kuma
maintains its status. Kuma's only rule is a display name of at most 253 characters, which
matters when the `kuma.io/display-name` label differs from the name (the name itself is
already held to 253 characters by the rules every resource follows).
"""

from __future__ import annotations

from reconciler.errors import Violation
from reconciler.kind import Kind
from reconciler.kinds._naming import DISPLAY_NAME_LABEL, check_name_length
from reconciler.model import Resource

__all__ = ["KIND", "validate", "MAX_NAME_LENGTH"]

MAX_NAME_LENGTH = 253


def validate(resource: Resource) -> list[Violation]:
    """Kuma's Workload rule: the display name fits in 253 characters."""
    if DISPLAY_NAME_LABEL not in resource.labels:
        return []
    return check_name_length(resource.name, resource.labels, MAX_NAME_LENGTH)


KIND = Kind(name="Workload", scope="Mesh", flat=False, short_name="wl", validate=validate)
