"""Dead policies: committed policies that change nothing on any proxy, and why.

Kuma accepts them silently. Two reasons are reported, each as a warning at the policy's
targetRef:

- its targetRef selects none of the mesh's Dataplanes in this revision;
- every field it sets is overridden, on every inbound, outbound and proxy-wide conf it reaches,
  by entries of policies applied after it. The classic case: a mesh-wide MeshTimeout named `t`
  or `timeout-global` ties with Kuma's default `mesh-timeout-all-<mesh>` on the targetRef, and
  on a tie the lexicographically smaller name is applied last, so the default wins every field
  both set.

The answer comes from the targetRef engine itself (policies/core/match.py: `matched_policies`
for selection, `outbound_conf` / `inbound_conf` / `single_conf` and their `Conf.origins` for
the merge order); this module only reads which contributions a later one replaces, with the
merge rules of policies/core/merge.py (objects merge key by key, a later value replaces an
earlier one, `append…` lists concatenate).

It claims only what it can see. Meshes without Dataplanes in git (proxies that register at
runtime) are skipped; the override check covers the kinds whose confs the engine merges
generically (not those with a plugin-specific conf), policies selecting no builtin gateway,
and entries the generic merge handles (`to` by Mesh/MeshService/MeshExternalService/
MeshMultiZoneService, `from` by Mesh, `rules` without matches, a top-level `default`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Problem, Violation
from reconciler.mesh.model import SERVICE_TAG, Dataplane, MeshModel, build_mesh_model
from reconciler.model import Resource
from reconciler.policies.core.match import (
    Conf,
    PolicyIndex,
    inbound_conf,
    matched_policies,
    outbound_conf,
    policy_sort_key,
    selects,
    single_conf,
)
from reconciler.policies.plugins import plugins
from reconciler.types import ResourceKey
from reconciler.views.proxy import OutboundView, destination_of, policy_indexes

__all__ = ["DeadPolicy", "dead_policies", "dead_policy_problems"]

OVERRIDE_BUDGET = 250_000
"""Proxies × policies of one kind above which the override check is skipped: the engine matches
each pair (about 15 µs each), and a gate must answer in seconds."""

_TO_KINDS = frozenset({"Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService"})

Leaf = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadPolicy:
    policy: Resource
    reason: str


@dataclass
class _Tally:
    """What one policy's contributions did across every conf that merged them."""

    contributed: bool = False
    survived: bool = False
    overriders: dict[ResourceKey, Resource] = field(default_factory=dict)


def _leaves(value: Any, prefix: Leaf = ()) -> Iterator[tuple[Leaf, bool]]:
    """(path, appends) of every value a `default` sets; `appends` for `append…` lists, which
    concatenate instead of replacing. An empty object sets nothing."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, (*prefix, str(key)))
    elif prefix:
        yield prefix, prefix[-1].startswith("append") and isinstance(value, (list, tuple))


def _replaces(later: Leaf, earlier: Leaf) -> bool:
    """A later value at `later` replaces the earlier one at `earlier`: same field, a value over
    its whole object, or an object over its value."""
    n = min(len(later), len(earlier))
    return later[:n] == earlier[:n]


def _entry_default(policy: Resource, pointer: str) -> Any:
    parts = pointer.strip("/").split("/")[1:]  # "/spec/to/0" → ["to", "0"]
    if parts == ["default"]:
        return policy.spec.get("default")
    section = policy.spec.get(parts[0]) or ()
    return section[int(parts[1])].get("default")


def _eligible_for_override(policy: Resource) -> bool:
    ref = policy.spec.get("targetRef") or {}
    if ref.get("kind") == "MeshHTTPRoute":
        return False
    for entry in policy.spec.get("to") or ():
        if (entry.get("targetRef") or {}).get("kind", "Mesh") not in _TO_KINDS:
            return False
    for entry in policy.spec.get("from") or ():
        if (entry.get("targetRef") or {}).get("kind", "Mesh") != "Mesh":
            return False
    return all(not rule.get("matches") for rule in policy.spec.get("rules") or ())


class _Analysis:
    """One mesh: its dataplanes, its policy index, and the tallies of its committed policies."""

    def __init__(self, model: MeshModel, index: PolicyIndex, dataplanes: list[Dataplane], committed: list[Resource]) -> None:
        self.model = model
        self.index = index
        self.dataplanes = dataplanes
        self.committed = {p.key: p for p in committed}
        self.resources = {r.key: r for rs in index.by_kind.values() for r in rs}
        self.tallies: dict[ResourceKey, _Tally] = {}
        self._seen: set[int] = set()
        self._kept: list[Conf] = []
        self._by_service: dict[str, list[Dataplane]] | None = None
        self._mesh_services = {(s.mesh, s.mesh_service) for s in model.services.values() if s.mesh_service}

    def selected(self, policy: Resource) -> list[Dataplane]:
        """The dataplanes the engine's `selects` matches `policy` to (matched_policies' own test),
        asked only of the dataplanes that carry the service a tag-based targetRef requires."""
        out = []
        for dp in self._candidates(policy):
            selection = selects(policy, dp, self.index)
            if selection.whole_proxy or selection.inbounds:
                out.append(dp)
        return out

    def _candidates(self, policy: Resource) -> list[Dataplane]:
        ref = policy.spec.get("targetRef") or {}
        kind = ref.get("kind")
        service: Any = None
        if kind in ("MeshSubset", "MeshServiceSubset"):
            service = (ref.get("tags") or {}).get(SERVICE_TAG) if kind == "MeshSubset" else ref.get("name")
        elif kind == "MeshService" and (policy.mesh, ref.get("name")) not in self._mesh_services:
            service = ref.get("name")  # no real MeshService of that name: the service tag decides
        if not isinstance(service, str) or service in ("", "*"):
            return self.dataplanes
        if self._by_service is None:
            self._by_service = {}
            for dp in self.dataplanes:
                tags = [i.tags for i in dp.inbounds] + [(dp.gateway or {}).get("tags") or {}]
                for name in {str(t.get(SERVICE_TAG)) for t in tags if t.get(SERVICE_TAG)}:
                    self._by_service.setdefault(name, []).append(dp)
        return self._by_service.get(service, [])

    def record(self, conf: Conf | None) -> None:
        """Tally which contributions of `conf` survive the merge and which are replaced."""
        if conf is None or id(conf) in self._seen:
            return
        self._seen.add(id(conf))
        self._kept.append(conf)  # alive while its id is in _seen, so no other conf gets that id
        entries = [(c.policy, _leaves(_entry_default(self.resources[c.policy], c.pointer) or {})) for c in conf.origins]
        leaves = [(key, list(found)) for key, found in entries]
        for i, (key, mine) in enumerate(leaves):
            tally = self.tallies.get(key)
            if tally is None:
                continue
            tally.contributed = True
            for leaf, appends in mine:
                replacers = [k for k, theirs in leaves[i + 1 :] if not appends and any(_replaces(other, leaf) for other, _ in theirs)]
                if not replacers or key in replacers:
                    tally.survived = True
                for k in replacers:
                    if k != key:  # its own later entry: the field is still this policy's
                        tally.overriders.setdefault(k, self.resources[k])

    def walk(self, kind: str, inbound: bool, outbound: bool, dataplanes: Iterable[Dataplane]) -> None:
        """Every conf of `kind` on every inbound, outbound and proxy of these sidecars."""
        for dp in dataplanes:
            if dp.gateway or not matched_policies(kind, dp, self.index):
                continue
            if outbound:
                for o in dp.outbounds:
                    dest = destination_of(OutboundView(o, o.service, o.service, self.model.service_for(dp, o)))
                    self.record(outbound_conf(kind, dp, dest, self.index))
            if inbound:
                for i in dp.inbounds:
                    self.record(inbound_conf(kind, dp, i, self.index))
            self.record(single_conf(kind, dp, self.index))


def _describe_ref(policy: Resource) -> str:
    ref = policy.spec.get("targetRef") or {"kind": "Mesh"}
    parts = [str(ref.get("kind", "Mesh"))]
    if ref.get("name"):
        parts.append(f'name "{ref["name"]}"')
    for field_name in ("tags", "labels", "proxyTypes"):
        if ref.get(field_name):
            parts.append(f"{field_name} {dict(ref[field_name]) if isinstance(ref[field_name], Mapping) else list(ref[field_name])}")
    if ref.get("sectionName"):
        parts.append(f'sectionName "{ref["sectionName"]}"')
    return " ".join(parts)


def _overridden_reason(policy: Resource, proxies: int, overriders: Iterable[Resource], committed: Mapping[ResourceKey, Resource]) -> str:
    ordered = sorted(overriders, key=lambda r: (r.type, r.name))
    names = ", ".join(f"{r.type} {r.name}" + ("" if r.key in committed else " (Kuma's default)") for r in ordered)
    mine = policy_sort_key(policy)[:5]
    ties = [r for r in ordered if policy_sort_key(r)[:5] == mine]
    text = (
        f"dead policy: every field it sets is overridden on the {proxies} "
        f"prox{'y' if proxies == 1 else 'ies'} it selects by {names}, applied after it"
    )
    if ties:
        tie = ties[0]
        text += (
            f'; {tie.name} ties with it on the targetRef and on a tie Kuma applies the smaller name last, so "{tie.name}" wins '
            f'over "{policy.name}"; rename it to a name alphabetically smaller than "{tie.name}" or give it a more specific targetRef'
        )
    else:
        text += "; give it a more specific targetRef or remove the fields they set"
    defaults = sorted({r.type for r in ordered if r.key not in committed})
    if defaults:
        text += f", or drop Kuma's default with the Mesh's skipCreatingInitialPolicies: [{', '.join(defaults)}]"
    return text


def dead_policies(model: MeshModel, indexes: Mapping[str, PolicyIndex] | None = None) -> list[DeadPolicy]:
    """The committed policies of `model` that change nothing on any of its proxies."""
    indexes = indexes if indexes is not None else policy_indexes(model)
    by_kind = {p.kind: p for p in plugins()}
    out: list[DeadPolicy] = []
    for mesh, index in sorted(indexes.items()):
        dataplanes = [dp for _, dp in sorted(model.dataplanes.items()) if dp.mesh == mesh]
        committed = [p for p in model.policies if p.mesh == mesh]
        if not dataplanes or not committed:
            continue
        analysis = _Analysis(model, index, dataplanes, committed)
        proxies_of: dict[ResourceKey, int] = {}
        chosen_of: dict[ResourceKey, list[Dataplane]] = {}
        for policy in committed:
            chosen = analysis.selected(policy)
            if not chosen:
                n = len(dataplanes)
                out.append(
                    DeadPolicy(
                        policy,
                        f"dead policy: its targetRef ({_describe_ref(policy)}) selects none of the {n} Dataplane"
                        f'{"" if n == 1 else "s"} of mesh "{mesh}" in this revision, so it changes nothing; '
                        "fix the targetRef or remove the policy",
                    )
                )
                continue
            plugin = by_kind.get(policy.type)
            generic = plugin is not None and plugin.inbound_conf is None and plugin.outbound_conf is None
            if generic and _eligible_for_override(policy) and not any(dp.gateway for dp in chosen):
                analysis.tallies[policy.key] = _Tally()
                proxies_of[policy.key] = len(chosen)
                chosen_of[policy.key] = chosen
        for kind in sorted({key.type for key in analysis.tallies}):
            reached = {dp.node_id: dp for key, dps in chosen_of.items() if key.type == kind for dp in dps}
            if len(reached) * len(index.of(kind)) > OVERRIDE_BUDGET:
                # The engine matches every policy of the kind against every proxy: too slow for a gate.
                for key in [k for k in analysis.tallies if k.type == kind]:
                    del analysis.tallies[key]
                continue
            plugin = by_kind[kind]
            analysis.walk(kind, plugin.inbound, plugin.outbound, [reached[n] for n in sorted(reached)])
        for key, tally in analysis.tallies.items():
            if tally.contributed and not tally.survived and tally.overriders:
                policy = analysis.committed[key]
                out.append(DeadPolicy(policy, _overridden_reason(policy, proxies_of[key], tally.overriders.values(), analysis.committed)))
    return out


def dead_policy_problems(resources: Iterable[Resource]) -> list[Problem]:
    """Warnings at each dead policy's targetRef for the resources of one valid revision."""
    model = build_mesh_model(resources)
    return [d.policy.locate(Violation(d.policy.spec_root.field("targetRef"), d.reason, "warning")) for d in dead_policies(model)]
