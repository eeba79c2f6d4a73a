"""allowed_pairs: who may talk to whom under Kuma's MeshTrafficPermission semantics."""

from __future__ import annotations

from reconciler.commands.reachability import allowed_pairs, allowed_pairs_by_mesh, inbound_clients
from reconciler.mesh.model import build_mesh_model
from tests.gitops.helpers import ALLOW_ALL, dataplane, deny_from, mesh
from tests.support import snapshot_of_text

SERVICES = ("web", "backend", "orders")
EVERY_PAIR = {(s, d) for s in SERVICES for d in SERVICES}


def pairs(*docs: str, mtls: bool = True) -> set[tuple[str, str]]:
    dps = [dataplane(s, 18080 + i, 19000 + i, 19901 + i) for i, s in enumerate(SERVICES)]
    text = "---\n".join([mesh(mtls=mtls), *dps, *docs])
    return allowed_pairs(build_mesh_model(snapshot_of_text(text).resources))


def mtp(name: str, target: str, *entries: tuple[str, str]) -> str:
    """A MeshTrafficPermission with top-level `target` (YAML flow) and (from targetRef, action) entries."""
    text = f"type: MeshTrafficPermission\nmesh: default\nname: {name}\nspec:\n  targetRef: {target}\n  from:\n"
    for ref, action in entries:
        text += f"    - targetRef: {ref}\n      default: {{action: {action}}}\n"
    return text


def test_without_mtls_every_service_may_reach_every_service() -> None:
    assert pairs(mtls=False) == EVERY_PAIR
    assert pairs(deny_from("web", "backend"), mtls=False) == EVERY_PAIR


def test_with_mtls_and_no_permission_nothing_is_allowed() -> None:
    assert pairs() == set()


def test_allow_all_then_a_deny_for_one_pair() -> None:
    assert pairs(ALLOW_ALL) == EVERY_PAIR
    assert pairs(ALLOW_ALL, deny_from("web", "backend")) == EVERY_PAIR - {("web", "backend")}


def test_allow_with_shadow_deny_allows() -> None:
    shadow = mtp("shadow", "{kind: Mesh}", ("{kind: Mesh}", "AllowWithShadowDeny"))
    assert pairs(shadow) == EVERY_PAIR


def test_later_entries_of_one_policy_win_for_the_clients_they_match() -> None:
    policy = mtp("p", "{kind: Mesh}", ("{kind: Mesh}", "Allow"), ("{kind: MeshService, name: web}", "Deny"))
    assert pairs(policy) == EVERY_PAIR - {("web", d) for d in SERVICES}
    reversed_order = mtp("p", "{kind: Mesh}", ("{kind: MeshService, name: web}", "Deny"), ("{kind: Mesh}", "Allow"))
    assert pairs(reversed_order) == EVERY_PAIR


def test_a_more_specific_top_level_policy_wins_over_a_mesh_wide_one() -> None:
    mesh_wide_deny = mtp(
        "deny-web", "{kind: Mesh}", ("{kind: Mesh}", "Allow"), ("{kind: MeshSubset, tags: {kuma.io/service: web}}", "Deny")
    )
    backend_allows_all = mtp("backend-open", "{kind: Dataplane, labels: {app: backend}}", ("{kind: Mesh}", "Allow"))
    assert pairs(mesh_wide_deny, backend_allows_all) == (EVERY_PAIR - {("web", d) for d in SERVICES}) | {("web", "backend")}


def test_mesh_service_subset_needs_every_tag() -> None:
    subset = mtp("p", "{kind: Mesh}", ("{kind: MeshServiceSubset, name: web, tags: {version: v2}}", "Allow"))
    assert pairs(subset) == set()
    service = mtp("p", "{kind: Mesh}", ("{kind: MeshServiceSubset, name: web, tags: {kuma.io/protocol: http}}", "Allow"))
    assert pairs(service) == {("web", d) for d in SERVICES}


def test_spiffe_rules_deny_wins_over_allow() -> None:
    rules = """\
type: MeshTrafficPermission
mesh: default
name: rules
spec:
  targetRef: {kind: Mesh}
  rules:
    - default:
        allow:
          - spiffeID: {type: Prefix, value: "spiffe://default/"}
        deny:
          - spiffeID: {type: Exact, value: "spiffe://default/orders"}
"""
    assert pairs(rules) == EVERY_PAIR - {("orders", d) for d in SERVICES}


def test_section_name_limits_a_policy_to_one_inbound() -> None:
    two_inbounds = """\
type: Dataplane
mesh: default
name: api
labels: {app: api}
networking:
  address: 127.0.0.1
  admin: {port: 29901}
  inbound:
    - {port: 28080, servicePort: 29000, name: public, tags: {kuma.io/service: api, kuma.io/protocol: http}}
    - {port: 28081, servicePort: 29001, name: admin, tags: {kuma.io/service: api-admin, kuma.io/protocol: http}}
"""
    only_public = mtp("public", "{kind: Dataplane, labels: {app: api}, sectionName: public}", ("{kind: Mesh}", "Allow"))
    text = "---\n".join([mesh(mtls=True), dataplane("web", 18080, 19000, 19901), two_inbounds, only_public])
    model = build_mesh_model(snapshot_of_text(text).resources)
    clients = {(k.node_id, k.port): v for k, v in inbound_clients(model).items()}
    assert clients[("default.api", 28080)] == {"web", "api", "api-admin"}
    assert clients[("default.api", 28081)] == frozenset()
    assert allowed_pairs_by_mesh(model)["default"] == {("web", "api"), ("api", "api"), ("api-admin", "api")}
