"""What the reconciler knows about each resource kind, independent of any one resource."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from reconciler.errors import Violation
    from reconciler.model import Resource

__all__ = ["Kind", "Scope", "Validator", "no_checks"]

Scope = Literal["Mesh", "Global"]
Validator = Callable[["Resource"], Iterable["Violation"]]


def no_checks(resource: Resource) -> Iterable[Violation]:
    return ()


@dataclass(frozen=True, slots=True)
class Kind:
    """A resource kind: its name, scope, document shape and semantic checks.

    `validate` runs after the kind's JSON Schema accepted the document's shape; it returns
    Violations with paths rooted in the Universal document (`/spec/...`, or `/networking/...`
    for the proto kinds whose fields sit at the top level).
    """

    name: str
    scope: Scope = "Mesh"
    flat: bool = False
    """Kuma's proto kinds keep their fields at the top level instead of under `spec`."""
    policy: bool = False
    """A targetRef policy (matched to proxies by the targetRef engine)."""
    short_name: str = ""
    validate: Validator = no_checks

    @property
    def global_scope(self) -> bool:
        return self.scope == "Global"
