"""Who may talk to whom: the service pairs a mesh's MeshTrafficPermissions allow.

Semantics (Kuma's MeshTrafficPermission, legacy `from` and SPIFFE-ID `rules`):

- A mesh without mTLS (`mtls.enabledBackend` unset) does not enforce permissions: every
  client may reach every inbound.
- With mTLS, a client reaches an inbound only when the policies that select that inbound say
  so. The policies are the MeshTrafficPermissions (plus the mesh's default ones) whose top-level
  targetRef selects the inbound, ordered least specific first (`matched_policies`,
  `policy_sort_key`).
- `from` entries: an entry applies to a client when its targetRef's tags are all among the
  client's tags (Mesh: always; MeshSubset: `tags`; MeshService: `kuma.io/service: name`;
  MeshServiceSubset: both). The `default`s of the entries that apply are merged in policy
  order, then entry order (Kuma's rules: later wins), and the resulting `action` decides:
  Allow and AllowWithShadowDeny let the client in, Deny and no applicable entry keep it out.
- `rules` entries match the client's SPIFFE ID (`spiffe://<mesh>/<service>`, Exact or Prefix):
  a matching `deny` from any policy wins, then any matching `allow` / `allowWithShadowDeny`
  lets the client in, anything else is denied. When any policy on an inbound has `rules`,
  they alone decide for that inbound (its `from` entries are not used), as the RBAC generator
  (reconciler/policies/meshtrafficpermission/envoy.py) does.
- A client is a dataplane that provides at least one service; its tags are the tags of all its
  inbounds (and of its gateway), as its certificate carries them.

A pair (source service, destination service) is allowed when at least one client of the
source service may reach at least one inbound of the destination service. The per-inbound
answer (`inbound_clients`) is finer, and is what `plan` uses to find the affected proxies.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from reconciler.mesh.model import SERVICE_TAG, Dataplane, Inbound, MeshModel
from reconciler.policies.core.match import PolicyIndex, matched_policies
from reconciler.policies.core.merge import merge_confs
from reconciler.views.proxy import policy_indexes

__all__ = [
    "Pair",
    "InboundKey",
    "allowed_pairs",
    "allowed_pairs_by_mesh",
    "inbound_clients",
    "mtls_enabled",
    "spiffe_id",
    "ALLOWING_ACTIONS",
]

KIND = "MeshTrafficPermission"
ALLOWING_ACTIONS = frozenset({"Allow", "AllowWithShadowDeny"})

Pair = tuple[str, str]
"""(source service, destination service)"""


@dataclass(frozen=True, slots=True, order=True)
class InboundKey:
    """One inbound of one dataplane: node id `<mesh>.<name>`, listener address and port."""

    node_id: str
    address: str
    port: int
    service: str


@dataclass(frozen=True, slots=True)
class _Client:
    """What a policy can see of a client: its services and tags (replicas look the same)."""

    services: frozenset[str]
    tags: tuple[tuple[str, frozenset[str]], ...]

    def has(self, key: str, value: str) -> bool:
        return any(k == key and value in values for k, values in self.tags)


def mtls_enabled(model: MeshModel, mesh: str) -> bool:
    info = model.meshes.get(mesh)
    if info is None:
        return False
    mtls = info.resource.spec.get("mtls") or {}
    return bool(mtls.get("enabledBackend")) if isinstance(mtls, Mapping) else False


def spiffe_id(mesh: str, service: str) -> str:
    return f"spiffe://{mesh}/{service}"


def _clients(model: MeshModel, mesh: str) -> list[_Client]:
    """The distinct clients of a mesh, in a stable order."""
    out: set[_Client] = set()
    for dp in model.dataplanes.values():
        if dp.mesh != mesh:
            continue
        tags = tuple(sorted((k, frozenset(v)) for k, v in dp.tags().items()))
        services = frozenset(dict(tags).get(SERVICE_TAG, frozenset()))
        if services:
            out.add(_Client(services, tags))
    return sorted(out, key=lambda c: (sorted(c.services), repr(c.tags)))


def _from_subset(ref: Mapping[str, Any]) -> dict[str, str] | None:
    """The tags a `from` targetRef requires of a client; None for kinds that name no clients."""
    kind = ref.get("kind", "Mesh")
    tags = {str(k): str(v) for k, v in (ref.get("tags") or {}).items()}
    if kind == "Mesh":
        return {}
    if kind == "MeshSubset":
        return tags
    if kind == "MeshService":
        return {SERVICE_TAG: str(ref.get("name") or "")}
    if kind == "MeshServiceSubset":
        return {**tags, SERVICE_TAG: str(ref.get("name") or "")}
    return None


def _applies(subset: Mapping[str, str], client: _Client) -> bool:
    return all(client.has(k, v) for k, v in subset.items())


def _spiffe_matches(match: Any, identities: Set[str]) -> bool:
    if not isinstance(match, Mapping):
        return False
    spiffe = match.get("spiffeID")
    if not isinstance(spiffe, Mapping):
        return False  # SNI matches concern zone proxies, not workload clients
    value = str(spiffe.get("value") or "")
    if spiffe.get("type") == "Prefix":
        return any(i.startswith(value) for i in identities)
    return value in identities


def _inbound_policies(inbound: Inbound, dp: Dataplane, index: PolicyIndex) -> list[Any]:
    """The MeshTrafficPermissions that select this inbound, least specific first."""
    key = (inbound.address, inbound.port)
    return [m.resource for m in matched_policies(KIND, dp, index) if key in m.selection.inbounds]


def _admits(policies: list[Any], mesh: str, client: _Client) -> bool:
    """Whether the policies on an inbound let `client` in."""
    identities = {spiffe_id(mesh, s) for s in client.services}
    rules = [rule.get("default") or {} for policy in policies for rule in policy.spec.get("rules") or ()]
    if rules:
        # `rules` decide alone when any policy on this inbound has them: deny first, then allow.
        if any(_spiffe_matches(m, identities) for conf in rules for m in conf.get("deny") or ()):
            return False
        return any(
            _spiffe_matches(m, identities) for conf in rules for name in ("allow", "allowWithShadowDeny") for m in conf.get(name) or ()
        )
    from_confs: list[Mapping[str, Any]] = []
    for policy in policies:
        for entry in policy.spec.get("from") or ():
            subset = _from_subset(entry.get("targetRef") or {})
            if subset is not None and _applies(subset, client) and entry.get("default") is not None:
                from_confs.append(entry["default"])
    return bool(from_confs) and merge_confs(from_confs).get("action") in ALLOWING_ACTIONS


def inbound_clients(model: MeshModel, indexes: Mapping[str, PolicyIndex] | None = None) -> dict[InboundKey, frozenset[str]]:
    """For every inbound that provides a service: the source services allowed to reach it."""
    indexes = indexes if indexes is not None else policy_indexes(model)
    clients_by_mesh = {mesh: _clients(model, mesh) for mesh in model.meshes}
    # Found once per mesh and once per inbound, not once per (inbound, client): a mesh of
    # 10,000 proxies has 10,000 inbounds and as many clients.
    everyone = {mesh: frozenset(s for c in clients for s in c.services) for mesh, clients in clients_by_mesh.items()}
    enforced = {mesh: mtls_enabled(model, mesh) for mesh in model.meshes}
    out: dict[InboundKey, frozenset[str]] = {}
    for dp in model.dataplanes.values():
        clients = clients_by_mesh.get(dp.mesh, [])
        for inbound in dp.inbounds:
            if not inbound.service:
                continue
            key = InboundKey(dp.node_id, inbound.address, inbound.port, inbound.service)
            if not enforced.get(dp.mesh, False):
                out[key] = everyone.get(dp.mesh, frozenset())
                continue
            policies = _inbound_policies(inbound, dp, indexes[dp.mesh])
            out[key] = frozenset(s for c in clients if _admits(policies, dp.mesh, c) for s in c.services)
    return out


def allowed_pairs_by_mesh(model: MeshModel, indexes: Mapping[str, PolicyIndex] | None = None) -> dict[str, set[Pair]]:
    """Per mesh, the (source service, destination service) pairs that may talk."""
    out: dict[str, set[Pair]] = {mesh: set() for mesh in model.meshes}
    for key, sources in inbound_clients(model, indexes).items():
        mesh = model.dataplanes[key.node_id].mesh
        out[mesh].update((source, key.service) for source in sources)
    return out


def allowed_pairs(model: MeshModel, mesh: str | None = None) -> set[Pair]:
    """(source service, destination service) pairs allowed in `mesh`, or in every mesh."""
    by_mesh = allowed_pairs_by_mesh(model)
    if mesh is not None:
        return by_mesh.get(mesh, set())
    return {pair for pairs in by_mesh.values() for pair in pairs}
