"""What a plan is: the values `reconciler plan` computes (reconciler/commands/plan.py) and its
renderers print (reconciler/commands/plan_render.py).

A `PlanResult` holds the validation of HEAD, the resource diff, every proxy whose Envoy config
or whose allowed clients change (`ProxyPlan`, with its `ResourceDelta`s and `ReachChange`s),
the service pairs that gain or lose the right to talk (`PairChange`) and what the real Envoy
said. It is plain data: the golden tests of the renderers build it by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.commands.envoy_check import EnvoyVerdict
from reconciler.commands.reachability import InboundKey
from reconciler.diff import Diff, FieldChange
from reconciler.validate import Report

__all__ = ["Op", "ResourceDelta", "ReachChange", "PairChange", "ProxyPlan", "PlanResult", "Plan"]

Op = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class ResourceDelta:
    """One Envoy resource of one proxy that differs between base and head (redacted JSON)."""

    type: str
    """Short xDS name: LDS, RDS, CDS, EDS or SDS."""
    name: str
    op: Op
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    fields: tuple[FieldChange, ...] = ()
    redacted: bool = False
    """The content is secret: only that it was added, removed or changed is shown."""


@dataclass(frozen=True, slots=True)
class ReachChange:
    """An inbound whose allowed clients (source services) changed."""

    inbound: InboundKey
    lost: tuple[str, ...]
    gained: tuple[str, ...]


@dataclass(frozen=True, slots=True, order=True)
class PairChange:
    mesh: str
    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class ProxyPlan:
    node_id: str
    status: Op
    resources: tuple[ResourceDelta, ...] = ()
    reach: tuple[ReachChange, ...] = ()
    envoy: EnvoyVerdict | None = None
    shape: str = ""
    """The outbound shape when it is not Kuma's or when it changes ("kuma → compact")."""


@dataclass(frozen=True, slots=True)
class PlanResult:
    base: str | None
    head: str | None
    report: Report
    """Validation of HEAD; when it failed, nothing else was computed."""
    diff: Diff | None = None
    proxies: tuple[ProxyPlan, ...] = ()
    lost: tuple[PairChange, ...] = ()
    gained: tuple[PairChange, ...] = ()
    allowed_before: int = 0
    allowed_after: int = 0
    envoy_checked: bool = False
    base_invalid: bool = False
    """BASE did not validate: it was compared as an empty configuration."""
    notes: tuple[str, ...] = field(default=())
    errors: tuple[str, ...] = field(default=())
    """Why HEAD cannot be served although it validates (a mesh CA that cannot be used)."""

    @property
    def rejected_by_envoy(self) -> tuple[ProxyPlan, ...]:
        return tuple(p for p in self.proxies if p.envoy is not None and not p.envoy.ok)

    @property
    def valid(self) -> bool:
        return self.report.valid and not self.errors and not self.rejected_by_envoy


Plan = PlanResult
"""The name the plan had before it moved here."""
