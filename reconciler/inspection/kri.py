"""Kuma Resource Identifiers (pkg/core/kri, api/openapi/specs/kri):
`kri_<short type>_<mesh>_<zone>_<namespace>_<name>_<section>`, the name being the display
name (`kuma.io/display-name`) when the resource has one. The inspect endpoints of Kuma 2.14
name a dataplane's inbounds, outbounds, routes and contributing policies by KRI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.kinds import all_kinds
from reconciler.kinds._naming import DISPLAY_NAME_LABEL, NAMESPACE_LABEL, ZONE_LABEL
from reconciler.model import Resource

__all__ = ["Kri", "kri", "resource_kri", "parse_kri", "SHORT_NAMES"]

SHORT_NAMES: Mapping[str, str] = {name: kind.short_name for name, kind in all_kinds().items() if kind.short_name}
"""Each kind's short name in KRIs, as its Kind declares it (Secret has none)."""
_KINDS = {v: k for k, v in SHORT_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Kri:
    type: str
    mesh: str
    zone: str
    namespace: str
    name: str
    section: str = ""

    def __str__(self) -> str:
        return f"kri_{SHORT_NAMES[self.type]}_{self.mesh}_{self.zone}_{self.namespace}_{self.name}_{self.section}"


def kri(type: str, mesh: str, name: str, labels: Mapping[str, str], section: str = "") -> str:
    """The KRI of a resource of `type` named `name` with these labels (section: a port's name)."""
    shown = labels.get(DISPLAY_NAME_LABEL) or name
    return str(Kri(type, mesh, labels.get(ZONE_LABEL, ""), labels.get(NAMESPACE_LABEL, ""), shown, section))


def resource_kri(resource: Resource, section: str = "") -> str:
    return kri(resource.type, resource.mesh, resource.name, resource.labels, section)


def parse_kri(text: str) -> Kri:
    """A KRI's parts; ValueError with Kuma's message for anything else."""
    parts = text.split("_")
    if len(parts) != 7 or parts[0] != "kri" or parts[1] not in _KINDS or not parts[5]:
        raise ValueError(f'invalid identifier string: "{text}"')
    return Kri(_KINDS[parts[1]], parts[2], parts[3], parts[4], parts[5], parts[6])
