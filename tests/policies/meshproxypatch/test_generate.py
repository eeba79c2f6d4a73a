"""MeshProxyPatch through the generator: only the selected proxies change, even where proxies
share memoized resources, and a gateway's resources carry Kuma's `gateway` origin."""

from __future__ import annotations

from reconciler.mesh.model import build_mesh_model
from reconciler.views.proxy import proxy_views
from reconciler.xds.resources import CLUSTER, LISTENER
from tests.support import generate_checked, snapshot_of_text

_DATAPLANES = """
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: default
name: web-1
labels: {app: web, patched: "yes"}
networking:
  address: 10.0.0.1
  inbound:
    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}
  outbound:
    - {port: 10001, tags: {kuma.io/service: backend}}
---
type: Dataplane
mesh: default
name: web-2
labels: {app: web}
networking:
  address: 10.0.0.4
  inbound:
    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}
  outbound:
    - {port: 10001, tags: {kuma.io/service: backend}}
---
type: Dataplane
mesh: default
name: backend-1
networking:
  address: 10.0.0.2
  inbound:
    - {port: 8080, tags: {kuma.io/service: backend, kuma.io/protocol: http}}
"""

_PATCH = """
---
type: MeshProxyPatch
mesh: default
name: patch-web-1
spec:
  targetRef:
    kind: Dataplane
    labels: {patched: "yes"}
  default:
    appendModifications:
      - cluster:
          operation: Patch
          match: {name: backend}
          value: "connectTimeout: 42s"
"""


def _generate(text: str) -> dict[str, dict[str, dict[str, object]]]:
    views = proxy_views(build_mesh_model(snapshot_of_text(text).resources))
    out = {}
    for node in ("default.web-1", "default.web-2"):
        resources = generate_checked(views[node])
        out[node] = {f"{t}/{name}": r.to_dict() for t in (CLUSTER, LISTENER) for name, r in resources.of(t).items()}
    return out


def test_web_proxies_share_one_backend_cluster_object() -> None:
    # The premise of the test below: without a patch, both proxies get the very same object.
    views = proxy_views(build_mesh_model(snapshot_of_text(_DATAPLANES).resources))
    one, two = (generate_checked(views[n]).of(CLUSTER)["backend"] for n in ("default.web-1", "default.web-2"))
    assert one is two


def test_a_patch_of_a_shared_cluster_changes_the_selected_proxy_only() -> None:
    without = _generate(_DATAPLANES)
    with_patch = _generate(_DATAPLANES + _PATCH)
    # web-1 and web-2 share one memoized backend cluster: only web-1's copy is patched.
    assert with_patch["default.web-1"][f"{CLUSTER}/backend"]["connectTimeout"] == "42s"
    assert with_patch["default.web-2"] == without["default.web-2"]
    # Generating web-1 first did not change what web-2 is served, nor the other way round.
    again = _generate(_DATAPLANES + _PATCH)
    assert again == with_patch
    rest = {k: v for k, v in with_patch["default.web-1"].items() if k != f"{CLUSTER}/backend"}
    assert rest == {k: v for k, v in without["default.web-1"].items() if k != f"{CLUSTER}/backend"}
