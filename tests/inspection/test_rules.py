"""inspect_rules on small meshes: Kuma's InspectRules per inbound, outbound and route, with the
expectations of Kuma's own `_rules` golden cases (pkg/api-server/testdata/resources/inspect/
dataplanes/_rules) where our proxy has the outbound they describe, and the conf agreeing with
the Envoy config the proxy is served."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.inspection.rules import MTLS_WARNING, UnknownResource, gateway_rules, inspect_rules
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.render import render
from reconciler.xds_types import LISTENER
from tests.support import snapshot_of_text

NO_DEFAULTS = "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n---\n"


def _model(text: str) -> MeshModel:
    return build_mesh_model(snapshot_of_text(text).resources)


def _rule(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["type"] == kind)


def _meta(kind: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": kind, "mesh": "default", "name": name, "labels": labels or {}}


SECTION_NAME = (
    NO_DEFAULTS
    + """\
type: Dataplane
name: dp-1
mesh: default
labels: {app: demo-app}
networking:
  address: 127.0.0.1
  inbound:
    - {port: 8080, name: main-port, tags: {kuma.io/service: foo}}
    - {port: 9090, name: secondary-port, tags: {kuma.io/service: bar}}
---
type: MeshTimeout
name: select-whole-dpp
mesh: default
spec:
  targetRef: {kind: Dataplane, labels: {app: demo-app}}
  from:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 7s, connectionTimeout: 7s, http: {requestTimeout: 7s}}
---
type: MeshTimeout
name: select-single-inbound
mesh: default
spec:
  targetRef: {kind: Dataplane, labels: {app: demo-app}, sectionName: secondary-port}
  from:
    - targetRef: {kind: Mesh}
      default: {http: {requestTimeout: 2s}}
"""
)


def test_inbound_rules_merge_the_policies_selecting_each_inbound_as_kuma_does() -> None:
    doc = inspect_rules(_model(SECTION_NAME), "default", "dp-1")
    assert doc["resource"] == {"type": "Dataplane", "mesh": "default", "name": "dp-1", "labels": {"app": "demo-app"}}
    timeout = _rule(doc, "MeshTimeout")
    # Kuma's golden `dataplane_kind_meshtimeout_section_name`: the same confs and origins.
    assert timeout["fromRules"] == [
        {
            "inbound": {"name": "main-port", "tags": {"kuma.io/service": "foo"}, "port": 8080},
            "rules": [
                {
                    "matchers": [],
                    "conf": {"idleTimeout": "7s", "connectionTimeout": "7s", "http": {"requestTimeout": "7s"}},
                    "origin": [_meta("MeshTimeout", "select-whole-dpp")],
                }
            ],
        },
        {
            "inbound": {"name": "secondary-port", "tags": {"kuma.io/service": "bar"}, "port": 9090},
            "rules": [
                {
                    "matchers": [],
                    "conf": {"idleTimeout": "7s", "connectionTimeout": "7s", "http": {"requestTimeout": "2s"}},
                    "origin": [_meta("MeshTimeout", "select-whole-dpp"), _meta("MeshTimeout", "select-single-inbound")],
                }
            ],
        },
    ]
    # Kuma's inboundRules: each contributing entry with its own conf, in merge order.
    assert timeout["inboundRules"][1]["rules"] == [
        {
            "conf": [{"idleTimeout": "7s", "connectionTimeout": "7s", "http": {"requestTimeout": "7s"}}],
            "origin": [{"resourceMeta": _meta("MeshTimeout", "select-whole-dpp"), "ruleIndex": 0}],
        },
        {
            "conf": [{"http": {"requestTimeout": "2s"}}],
            "origin": [{"resourceMeta": _meta("MeshTimeout", "select-single-inbound"), "ruleIndex": 0}],
        },
    ]
    assert timeout["toRules"] == timeout["toResourceRules"] == []
    assert doc["httpMatches"] == []


def test_unknown_dataplane_or_mesh_is_a_lookup_error_naming_it() -> None:
    model = _model(SECTION_NAME)
    with pytest.raises(LookupError, match="no Dataplane default/dp-2"):
        inspect_rules(model, "default", "dp-2")
    with pytest.raises(UnknownResource) as raised:
        inspect_rules(model, "other", "dp-1")
    assert raised.value.type == "Mesh"


def test_a_mesh_without_policies_has_no_rules() -> None:
    doc = inspect_rules(
        _model(
            NO_DEFAULTS
            + "type: Dataplane\nname: dp-1\nmesh: default\nnetworking:\n  address: 127.0.0.1\n  inbound:\n    - {port: 8080, tags: {kuma.io/service: foo}}\n"
        ),
        "default",
        "dp-1",
    )
    assert doc == {"resource": _meta("Dataplane", "dp-1"), "rules": [], "httpMatches": []}


ROUTE_POLICIES = (
    NO_DEFAULTS
    + """\
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  inbound:
    - {port: 1234, tags: {kuma.io/service: svc-1, kuma.io/protocol: http}}
  outbound:
    - {port: 10001, tags: {kuma.io/service: backend}}
---
type: Dataplane
name: backend-1
mesh: default
networking:
  address: 127.0.0.2
  inbound:
    - {port: 8080, tags: {kuma.io/service: backend, kuma.io/protocol: http, version: "1.0"}}
---
type: MeshTimeout
name: on-route
mesh: default
spec:
  targetRef: {kind: MeshHTTPRoute, name: the-http-route}
  to:
    - targetRef: {kind: Mesh}
      default: {http: {requestTimeout: 15s}}
---
type: MeshTimeout
name: on-service
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 20s}}
---
type: MeshHTTPRoute
name: the-http-route
mesh: default
spec:
  targetRef: {kind: MeshService, name: svc-1}
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default:
            backendRefs: [{kind: MeshServiceSubset, name: backend, tags: {version: "1.0"}}]
"""
)

API_HASH = "waFsoIISmZDTfFWYqxvY265/GASHYEWvHQTwMh/bpuU="
"""Kuma's hash of `[{path: {type: PathPrefix, value: /api}}]` (its `meshhttproute` golden)."""


def test_route_rules_and_policies_aimed_at_a_route_as_kumas_legacy_rules() -> None:
    doc = inspect_rules(_model(ROUTE_POLICIES), "default", "dp-1")
    assert doc["httpMatches"] == [{"hash": API_HASH, "match": [{"path": {"value": "/api", "type": "PathPrefix"}}]}]
    route = _rule(doc, "MeshHTTPRoute")
    service = [{"key": "kuma.io/service", "value": "backend", "not": False}]
    assert route["toRules"] == [
        {
            "matchers": service,
            "conf": {
                "rules": [
                    {
                        "matches": [{"path": {"value": "/api", "type": "PathPrefix"}}],
                        "default": {
                            "backendRefs": [{"kind": "MeshServiceSubset", "name": "backend", "tags": {"version": "1.0"}, "weight": 1}]
                        },
                    }
                ]
            },
            "origin": [_meta("MeshHTTPRoute", "the-http-route")],
        }
    ]
    timeout = _rule(doc, "MeshTimeout")
    assert timeout["toRules"] == [
        {"matchers": service, "conf": {"http": {"requestTimeout": "20s"}}, "origin": [_meta("MeshTimeout", "on-service")]},
        {
            "matchers": [{"key": "__rule-matches-hash__", "value": API_HASH, "not": False}, *service],
            "conf": {"http": {"requestTimeout": "15s"}},
            "origin": [_meta("MeshTimeout", "on-service"), _meta("MeshTimeout", "on-route")],
        },
    ]


def _route_configs(value: Any) -> list[dict[str, Any]]:
    """Every inline `routeConfig` of a listener's JSON."""
    if isinstance(value, dict):
        found = [value["routeConfig"]] if "routeConfig" in value else []
        return found + [c for v in value.values() for c in _route_configs(v)]
    if isinstance(value, list):
        return [c for v in value for c in _route_configs(v)]
    return []


def test_route_confs_shown_are_the_timeouts_envoy_is_given() -> None:
    model = _model(ROUTE_POLICIES)
    listener = render(model, only=("default.dp-1",)).resources["default.dp-1"].of(LISTENER)["outbound:127.0.0.1:10001"]
    routes = [r for rc in _route_configs(listener.to_dict()) for vh in rc["virtualHosts"] for r in vh["routes"]]
    served = {r["match"].get("path") or r["match"]["prefix"]: r["route"]["timeout"] for r in routes}
    timeout = _rule(inspect_rules(model, "default", "dp-1"), "MeshTimeout")
    shown = {("/api" if len(r["matchers"]) == 2 else "/"): r["conf"]["http"]["requestTimeout"] for r in timeout["toRules"]}
    assert served["/api"] == served["/api/"] == shown["/api"] == "15s"
    assert served["/"] == shown["/"] == "20s"


RESOURCE_RULE = (
    NO_DEFAULTS
    + """\
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  inbound:
    - {port: 8080, tags: {kuma.io/service: foo, app: client}}
  outbound:
    - port: 10080
      backendRef: {kind: MeshService, name: backend-4, port: 80}
---
type: Dataplane
name: backend-1
mesh: default
networking:
  address: 127.0.0.2
  inbound:
    - {port: 80, tags: {kuma.io/service: backend, app: backend}}
---
type: MeshTimeout
name: matched-for-rules-mt-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend-4, sectionName: super-port}
      default: {idleTimeout: 7s, connectionTimeout: 7s, http: {requestTimeout: 7s}}
---
type: MeshService
name: backend-4
mesh: default
labels: {env: prod}
spec:
  selector: {dataplaneTags: {app: backend}}
  ports:
    - {name: super-port, port: 80, targetPort: 80, appProtocol: http}
---
type: MeshTCPRoute
name: tcp
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend-4}
      rules:
        - default: {backendRefs: [{kind: MeshService, name: backend-4, port: 80}]}
"""
)


def test_real_meshservice_destinations_get_resource_rules_as_kuma_shows_them() -> None:
    doc = inspect_rules(_model(RESOURCE_RULE), "default", "dp-1")
    timeout = _rule(doc, "MeshTimeout")
    # Kuma's golden `resource_rule_meshtimeout_section`.
    assert timeout["toResourceRules"] == [
        {
            "resourceMeta": _meta("MeshService", "backend-4", {"env": "prod"}),
            "resourceSectionName": "super-port",
            "conf": [{"idleTimeout": "7s", "connectionTimeout": "7s", "http": {"requestTimeout": "7s"}}],
            "origin": [{"resourceMeta": _meta("MeshTimeout", "matched-for-rules-mt-1"), "ruleIndex": 0}],
        }
    ]
    tcp = _rule(doc, "MeshTCPRoute")
    [rule] = tcp["toResourceRules"]
    assert rule["conf"] == [
        {"rules": [{"default": {"backendRefs": [{"kind": "MeshService", "name": "backend-4", "port": 80, "weight": 1}]}}]}
    ]
    assert rule["origin"] == [{"resourceMeta": _meta("MeshTCPRoute", "tcp"), "ruleIndex": 0}]


def test_traffic_permission_rules_per_client_and_kumas_warning_without_mtls() -> None:
    text = (
        NO_DEFAULTS
        + """\
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  inbound:
    - {port: 8080, tags: {kuma.io/service: web, kuma.io/protocol: http}}
---
type: MeshTrafficPermission
name: mtp-1
mesh: default
spec:
  targetRef: {kind: Mesh}
  from:
    - targetRef: {kind: Mesh}
      default: {action: Deny}
    - targetRef: {kind: MeshSubset, tags: {kuma.io/service: client, kuma.io/zone: east}}
      default: {action: Allow}
"""
    )
    mtp = _rule(inspect_rules(_model(text), "default", "dp-1"), "MeshTrafficPermission")
    assert mtp["warnings"] == [MTLS_WARNING]
    [entry] = mtp["fromRules"]
    assert [(r["matchers"], r["conf"]) for r in entry["rules"]] == [
        (
            [{"key": "kuma.io/service", "value": "client", "not": False}, {"key": "kuma.io/zone", "value": "east", "not": False}],
            {"action": "Allow"},
        ),
        ([], {"action": "Deny"}),
    ]
    assert [o["name"] for o in entry["rules"][0]["origin"]] == ["mtp-1"]


def test_proxy_wide_policies_give_a_proxy_rule() -> None:
    text = (
        SECTION_NAME
        + """\
---
type: MeshTrace
name: tracing
mesh: default
spec:
  targetRef: {kind: Mesh}
  default:
    backends: [{type: Zipkin, zipkin: {url: "http://127.0.0.1:9411/api/v2/spans"}}]
"""
    )
    trace = _rule(inspect_rules(_model(text), "default", "dp-1"), "MeshTrace")
    assert trace["proxyRule"] == {
        "conf": {"backends": [{"type": "Zipkin", "zipkin": {"url": "http://127.0.0.1:9411/api/v2/spans"}}]},
        "origin": [_meta("MeshTrace", "tracing")],
    }
    assert trace["fromRules"] == trace["toRules"] == []


GATEWAY = (
    NO_DEFAULTS
    + """\
type: MeshGateway
name: the-gateway
mesh: default
selectors:
  - match: {kuma.io/service: gw-1}
conf:
  listeners:
    - {port: 8080, protocol: HTTP}
---
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags: {kuma.io/service: gw-1, another: v1}
---
type: MeshTimeout
name: mt-on-gateway
mesh: default
spec:
  targetRef: {kind: MeshGateway, name: the-gateway}
  to:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 20s, connectionTimeout: 2s, http: {requestTimeout: 10s}}
---
type: MeshProxyPatch
mesh: default
name: mpp-on-gateway
spec:
  targetRef: {kind: MeshGateway, name: the-gateway}
  default:
    appendModifications:
      - cluster:
          operation: Add
          value: |
            name: test-cluster
            connectTimeout: 5s
            type: STATIC
"""
)


def test_a_builtin_gateway_and_its_meshgateway_get_kumas_mesh_wide_rules() -> None:
    model = _model(GATEWAY)
    conf = {"idleTimeout": "20s", "connectionTimeout": "2s", "http": {"requestTimeout": "10s"}}
    for doc in (inspect_rules(model, "default", "dp-1"), gateway_rules(model, "default", "the-gateway")):
        # Kuma's goldens `dataplanes/_rules/meshgateway` and `meshgateways/_rules/meshgateway`.
        assert [r["type"] for r in doc["rules"]] == ["MeshTimeout", "MeshProxyPatch"]
        timeout = _rule(doc, "MeshTimeout")
        assert timeout["toRules"] == [{"matchers": [], "conf": conf, "origin": [_meta("MeshTimeout", "mt-on-gateway")]}]
        assert timeout["toResourceRules"] == [
            {
                "resourceMeta": {"type": "Mesh", "mesh": "", "name": "default", "labels": {}},
                "resourceSectionName": "",
                "conf": [conf],
                "origin": [{"resourceMeta": _meta("MeshTimeout", "mt-on-gateway"), "ruleIndex": 0}],
            }
        ]
        assert _rule(doc, "MeshProxyPatch")["proxyRule"]["origin"] == [_meta("MeshProxyPatch", "mpp-on-gateway")]
    assert gateway_rules(model, "default", "the-gateway")["resource"] == _meta("MeshGateway", "the-gateway")
    with pytest.raises(UnknownResource, match="no MeshGateway default/nope"):
        gateway_rules(model, "default", "nope")


OVERRIDING = (
    NO_DEFAULTS
    + """\
type: Dataplane
name: dp-1
mesh: default
networking:
  address: 127.0.0.1
  inbound:
    - {port: 8080, tags: {kuma.io/service: foo}}
  outbound:
    - {port: 10001, tags: {kuma.io/service: foo}}
    - {port: 10002, tags: {kuma.io/service: bar}}
---
type: MeshTimeout
name: default
mesh: default
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 20s, connectionTimeout: 2s, http: {requestTimeout: 10s}}
---
type: MeshTimeout
name: override
mesh: default
spec:
  targetRef: {kind: MeshService, name: foo}
  to:
    - targetRef: {kind: MeshService, name: foo}
      default: {http: {requestTimeout: 15s}}
    - targetRef: {kind: MeshService, name: bar}
      default: {http: {requestTimeout: 20s}}
"""
)


def test_to_rules_per_service_then_kumas_catch_all_and_the_mesh_keyed_resource_rule() -> None:
    timeout = _rule(inspect_rules(_model(OVERRIDING), "default", "dp-1"), "MeshTimeout")
    both = [_meta("MeshTimeout", "default"), _meta("MeshTimeout", "override")]

    def conf(request: str) -> dict[str, Any]:
        return {"idleTimeout": "20s", "connectionTimeout": "2s", "http": {"requestTimeout": request}}

    # Kuma's golden `overriding_meshtimeout`: the same rules, confs and origins.
    assert timeout["toRules"] == [
        {"matchers": [{"key": "kuma.io/service", "value": "foo", "not": False}], "conf": conf("15s"), "origin": both},
        {"matchers": [{"key": "kuma.io/service", "value": "bar", "not": False}], "conf": conf("20s"), "origin": both},
        {"matchers": [], "conf": conf("10s"), "origin": both[:1]},
    ]
    assert timeout["toResourceRules"] == [
        {
            "resourceMeta": {"type": "Mesh", "mesh": "", "name": "default", "labels": {}},
            "resourceSectionName": "",
            "conf": [conf("10s")],
            "origin": [{"resourceMeta": both[0], "ruleIndex": 0}],
        }
    ]
