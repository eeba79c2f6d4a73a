"""The targetRef engine: selection, ordering and merging as Kuma v2.14 does them."""

from __future__ import annotations

from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core.match import Contribution, Destination, matched_policies, resolve
from reconciler.policies.core.merge import merge_confs
from reconciler.types import ResourceKey
from reconciler.views.proxy import policy_indexes
from tests.support import snapshot_of_text

DATAPLANES = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: default
name: web-1
labels:
  team: frontend
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      name: http
      tags:
        kuma.io/service: web
        version: v1
    - port: 9090
      name: admin
      tags:
        kuma.io/service: web-admin
  outbound:
    - port: 10001
      tags:
        kuma.io/service: backend
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - port: 8080
      tags:
        kuma.io/service: backend
"""


def setup(policies: str):  # type: ignore[no-untyped-def]
    snapshot = snapshot_of_text(DATAPLANES + "---\n" + policies)
    model = build_mesh_model(snapshot.resources)
    return model, policy_indexes(model)["default"]


def timeout(name: str, top: str, to: str, default: str) -> str:
    return f"""\
type: MeshTimeout
name: {name}
mesh: default
spec:
  targetRef: {top}
  to:
    - targetRef: {to}
      default: {default}
---
"""


def test_mesh_wide_and_service_specific_timeouts_merge_as_kumas_docs_show() -> None:
    model, index = setup(
        timeout("mesh-wide", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 20s, connectionTimeout: 2s, http: {requestTimeout: 2s}}")
        + timeout("backend-specific", "{kind: Mesh}", "{kind: MeshService, name: backend}", "{http: {requestTimeout: 10s}}")
    )
    web = model.dataplanes["default.web-1"]
    conf = resolve("MeshTimeout", web, Destination("backend"), index)
    assert conf is not None
    assert conf.value == {"idleTimeout": "20s", "connectionTimeout": "2s", "http": {"requestTimeout": "10s"}}
    # Same top-level kind: names decide, descending, so "backend-specific" is merged last.
    assert [c.policy.name for c in conf.origins] == ["mesh-wide", "backend-specific"]
    other = resolve("MeshTimeout", web, Destination("other"), index)
    assert other is not None and other.value["http"] == {"requestTimeout": "2s"}


def test_more_specific_top_level_kind_wins() -> None:
    model, index = setup(
        timeout("z-subset", "{kind: MeshSubset, tags: {kuma.io/service: web}}", "{kind: Mesh}", "{idleTimeout: 3s}")
        + timeout("a-mesh", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 1s}")
    )
    conf = resolve("MeshTimeout", model.dataplanes["default.web-1"], Destination("backend"), index)
    assert conf is not None and conf.value == {"idleTimeout": "3s"}
    assert [c.policy.name for c in conf.origins] == ["a-mesh", "z-subset"]


def test_on_a_tie_the_lexicographically_smaller_name_wins() -> None:
    model, index = setup(
        timeout("bbb", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 2s}")
        + timeout("aaa", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 1s}")
        + timeout("ccc", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 3s}")
    )
    conf = resolve("MeshTimeout", model.dataplanes["default.web-1"], Destination("backend"), index)
    assert conf is not None and conf.value == {"idleTimeout": "1s"}
    assert [c.policy.name for c in conf.origins] == ["ccc", "bbb", "aaa"]


def test_dataplane_by_name_is_more_specific_than_by_labels() -> None:
    model, index = setup(
        timeout("by-name", "{kind: Dataplane, name: web-1}", "{kind: Mesh}", "{idleTimeout: 5s}")
        + timeout("by-labels", "{kind: Dataplane, labels: {team: frontend}}", "{kind: Mesh}", "{idleTimeout: 9s}")
    )
    web = model.dataplanes["default.web-1"]
    assert [m.resource.name for m in matched_policies("MeshTimeout", web, index)] == ["by-labels", "by-name"]
    conf = resolve("MeshTimeout", web, Destination("backend"), index)
    assert conf is not None and conf.value == {"idleTimeout": "5s"}
    backend = model.dataplanes["default.backend-1"]
    assert matched_policies("MeshTimeout", backend, index) == ()


def test_section_name_selects_one_inbound() -> None:
    model, index = setup(
        """\
type: MeshTimeout
name: admin-only
mesh: default
spec:
  targetRef: {kind: Dataplane, name: web-1, sectionName: admin}
  rules:
    - default: {idleTimeout: 7s}
---
"""
    )
    web = model.dataplanes["default.web-1"]
    http, admin = web.inbounds
    assert resolve("MeshTimeout", web, http, index) is None
    conf = resolve("MeshTimeout", web, admin, index)
    assert conf is not None and conf.value == {"idleTimeout": "7s"}
    assert conf.origins == (Contribution(ResourceKey("MeshTimeout", "default", "admin-only"), "/spec/rules/0"),)


def test_mesh_subset_selects_inbounds_by_their_tags() -> None:
    model, index = setup(
        """\
type: MeshTimeout
name: v1-only
mesh: default
spec:
  targetRef: {kind: MeshSubset, tags: {version: v1}}
  from:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 4s}
---
"""
    )
    web = model.dataplanes["default.web-1"]
    http, admin = web.inbounds
    assert resolve("MeshTimeout", web, http, index) is not None
    assert resolve("MeshTimeout", web, admin, index) is None


def test_proxy_types_limit_mesh_wide_policies() -> None:
    model, index = setup(timeout("gateways-only", "{kind: Mesh, proxyTypes: [Gateway]}", "{kind: Mesh}", "{idleTimeout: 1s}"))
    assert resolve("MeshTimeout", model.dataplanes["default.web-1"], Destination("backend"), index) is None


def test_real_mesh_service_entries_order_by_their_own_kind() -> None:
    model, index = setup(
        timeout("zz-specific", "{kind: Mesh}", "{kind: MeshService, name: backend, sectionName: http}", "{idleTimeout: 8s}")
        + timeout("aa-mesh", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 1s}")
    )
    conf = resolve("MeshTimeout", model.dataplanes["default.web-1"], Destination("backend", "MeshService", 80, "http"), index)
    # Same top-level kind: the `to` kind decides (MeshService after Mesh), not the name.
    assert conf is not None and conf.value == {"idleTimeout": "8s"}


def test_merge_replaces_lists_concatenates_append_fields_and_null_removes() -> None:
    merged = merge_confs(
        [
            {"list": [1, 2], "appendModifications": [{"a": 1}], "keep": {"x": 1, "y": 2}, "gone": 1},
            {"list": [3], "appendModifications": [{"b": 2}], "keep": {"y": 3}, "gone": None},
        ]
    )
    assert merged == {"list": (3,), "appendModifications": ({"a": 1}, {"b": 2}), "keep": {"x": 1, "y": 3}}


def test_policy_targeting_a_route_selects_what_the_route_selects() -> None:
    model, index = setup(
        """\
type: MeshHTTPRoute
name: web-route
mesh: default
spec:
  targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            backendRefs: [{kind: MeshService, name: backend}]
---
type: MeshTimeout
name: on-route
mesh: default
spec:
  targetRef: {kind: MeshHTTPRoute, name: web-route}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {requestTimeout: 1s}}
---
"""
    )
    web, backend = model.dataplanes["default.web-1"], model.dataplanes["default.backend-1"]
    assert [m.resource.name for m in matched_policies("MeshTimeout", web, index)] == ["on-route"]
    assert matched_policies("MeshTimeout", backend, index) == ()
    # Selected, but it configures the route's rules only, never the destination itself.
    assert resolve("MeshTimeout", web, Destination("backend"), index) is None


def test_section_name_and_labels_name_real_meshservice_ports() -> None:
    model, index = setup(
        timeout("by-port-name", "{kind: Mesh}", "{kind: MeshService, name: backend, sectionName: http}", "{idleTimeout: 1s}")
        + timeout("by-labels", "{kind: Mesh}", "{kind: MeshService, labels: {tier: db}}", "{connectionTimeout: 2s}")
    )
    web = model.dataplanes["default.web-1"]
    named = Destination("backend", "MeshService", 80, "http", {"tier": "web"})
    assert resolve("MeshTimeout", web, named, index).value == {"idleTimeout": "1s"}  # type: ignore[union-attr]
    unnamed = Destination("backend", "MeshService", 81, "", {"tier": "db"})
    assert resolve("MeshTimeout", web, unnamed, index).value == {"connectionTimeout": "2s"}  # type: ignore[union-attr]
    assert resolve("MeshTimeout", web, Destination("other", "MeshService", 80, "http"), index) is None
