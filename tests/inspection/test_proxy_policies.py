"""Kuma 2.14's per-proxy views by KRI on small meshes, against the expectations of Kuma's own
golden cases (pkg/api-server/testdata/resources/inspect/dataplanes/_layout and _policies)."""

from __future__ import annotations

import pytest

from reconciler.inspection.kri import Kri, parse_kri
from reconciler.inspection.proxy_policies import NoSuchListener, inbound_policies, layout, outbound_policies, route_policies
from reconciler.inspection.rules import proxy_view_of, rules_of_view
from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core.match import PolicyIndex
from reconciler.views.proxy import ProxyView
from tests.support import snapshot_of_text

LAYOUT = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ['*']
---
type: Dataplane
name: dp-1
mesh: default
labels: {kuma.io/zone: test-zone}
networking:
  address: 127.0.0.1
  inbound:
    - {port: 8080, name: main-port, tags: {kuma.io/service: foo, kuma.io/protocol: http}}
    - {port: 8081, name: secondary-port, tags: {kuma.io/service: foo, kuma.io/protocol: tcp}}
  outbound:
    - port: 10080
      backendRef: {kind: MeshService, name: test-server, port: 80}
---
type: MeshService
name: test-server
mesh: default
labels: {kuma.io/zone: test-zone}
spec:
  selector: {dataplaneTags: {kuma.io/service: test-server}}
  ports:
    - {port: 80, targetPort: 80, appProtocol: http, name: main-port}
---
type: MeshTimeout
name: inbound-timeout
mesh: default
spec:
  targetRef: {kind: Mesh}
  rules:
    - default: {idleTimeout: 60s, connectionTimeout: 2s}
---
type: MeshTimeout
name: inbound-timeout-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  rules:
    - default: {http: {requestTimeout: 10s}}
---
type: MeshTimeout
name: mt-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 20s}
"""


def _proxy() -> tuple[ProxyView, PolicyIndex]:
    return proxy_view_of(build_mesh_model(snapshot_of_text(LAYOUT).resources), "default", "dp-1")


def test_layout_names_the_inbounds_and_outbounds_as_kuma() -> None:
    view, _ = _proxy()
    doc = layout(view)
    # Kuma's golden `_layout/single_universal_outbound`, but the Envoy resources named as ours.
    assert doc["kri"] == "kri_dp_default_test-zone__dp-1_"
    assert [(i["kri"], i["port"], i["protocol"]) for i in doc["inbounds"]] == [
        ("kri_dp_default_test-zone__dp-1_main-port", 8080, "http"),
        ("kri_dp_default_test-zone__dp-1_secondary-port", 8081, "tcp"),
    ]
    assert [(o["kri"], o["port"], o["protocol"]) for o in doc["outbounds"]] == [
        ("kri_msvc_default_test-zone__test-server_main-port", 80, "http")
    ]
    assert doc["outbounds"][0]["proxyResourceName"] == "outbound:127.0.0.1:10080"
    assert doc["listeners"] == []


def test_inbound_policies_list_each_entry_in_merge_order_as_kuma() -> None:
    view, index = _proxy()
    doc = inbound_policies(view, rules_of_view(view, index), "kri_dp_default_test-zone__dp-1_main-port")
    # Kuma's golden `_policies/inbounds/merged_inbound_policy` (durations as written here).
    assert doc == {
        "policies": [
            {
                "kind": "MeshTimeout",
                "origins": [{"kri": "kri_mt_default___inbound-timeout-1_"}, {"kri": "kri_mt_default___inbound-timeout_"}],
                "rules": [
                    {"conf": {"http": {"requestTimeout": "10s"}}, "kri": "kri_mt_default___inbound-timeout-1_"},
                    {"conf": {"idleTimeout": "60s", "connectionTimeout": "2s"}, "kri": "kri_mt_default___inbound-timeout_"},
                ],
            }
        ]
    }


def test_outbound_policies_by_the_meshservice_port_kri() -> None:
    view, index = _proxy()
    doc = outbound_policies(view, rules_of_view(view, index), "kri_msvc_default_test-zone__test-server_main-port")
    assert doc == {"policies": [{"kind": "MeshTimeout", "conf": [{"idleTimeout": "20s"}], "origins": [{"kri": "kri_mt_default___mt-1_"}]}]}
    with pytest.raises(NoSuchListener):
        outbound_policies(view, rules_of_view(view, index), "kri_msvc_default_test-zone__other_main-port")


def test_kri_parsing_rejects_what_is_not_one_with_kumas_message() -> None:
    assert parse_kri("kri_msvc_default_zone-1_ns_backend_http") == Kri("MeshService", "default", "zone-1", "ns", "backend", "http")
    assert str(parse_kri("kri_mt_default___mt-1_")) == "kri_mt_default___mt-1_"
    with pytest.raises(ValueError, match='invalid identifier string: "invalid-kri"'):
        parse_kri("invalid-kri")


ROUTED = """\
type: Mesh
name: default
skipCreatingInitialPolicies: ['*']
---
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  inbound:
    - {port: 1234, tags: {kuma.io/service: client, kuma.io/protocol: http}}
  outbound:
    - port: 10080
      backendRef: {kind: MeshService, name: test-server-1, port: 80}
---
type: MeshService
name: test-server-1
mesh: default
labels: {kuma.io/zone: test-zone}
spec:
  selector: {dataplaneTags: {kuma.io/service: test-server}}
  ports:
    - {port: 80, targetPort: 80, appProtocol: http, name: main-port}
---
type: MeshHTTPRoute
name: the-http-route
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: test-server-1}
      rules:
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            backendRefs: [{kind: MeshService, name: test-server-1, port: 80}]
---
type: MeshTimeout
name: mt-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshHTTPRoute, name: the-http-route}
      default: {http: {requestTimeout: 20s}}
---
type: MeshTimeout
name: mt-2
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshHTTPRoute, name: the-http-route}
      default: {connectionTimeout: 2s}
---
type: MeshRetry
name: mr-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {numRetries: 3}}
"""


def test_route_policies_merge_the_policies_aimed_at_the_route_and_fall_back_to_the_outbound() -> None:
    view, index = proxy_view_of(build_mesh_model(snapshot_of_text(ROUTED).resources), "default", "dp-1")
    outbound = "kri_msvc_default_test-zone__test-server-1_main-port"
    doc = route_policies(view, index, rules_of_view(view, index), outbound, "kri_mhttpr_default___the-http-route_")
    by_kind = {p["kind"]: p for p in doc["policies"]}
    # Kuma's goldens `_policies/routes/multiple_merged_policies_targeting_route` and `fallback_route_conf_to_mesh`.
    assert by_kind["MeshTimeout"] == {
        "kind": "MeshTimeout",
        "conf": [{"http": {"requestTimeout": "20s"}, "connectionTimeout": "2s"}],
        "origins": [{"kri": "kri_mt_default___mt-2_"}, {"kri": "kri_mt_default___mt-1_"}],
    }
    assert by_kind["MeshRetry"] == {
        "kind": "MeshRetry",
        "conf": [{"http": {"numRetries": 3}}],
        "origins": [{"kri": "kri_mr_default___mr-1_"}],
    }
    with pytest.raises(NoSuchListener):
        route_policies(view, index, rules_of_view(view, index), outbound, "kri_mhttpr_default___other_")
    with pytest.raises(ValueError, match="invalid identifier"):
        route_policies(view, index, rules_of_view(view, index), outbound, "invalid-kri")
