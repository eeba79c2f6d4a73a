"""inspect_rules of outbounds: MeshHTTPRoute rules and the policies aimed at a route (Kuma's
legacy rules and its matches hash), resource rules of real MeshServices and MeshTCPRoutes, and
the route timeouts shown agreeing with those Envoy is served."""

from __future__ import annotations

from typing import Any

from reconciler.inspection.rules import inspect_rules
from reconciler.render import render
from reconciler.xds_types import LISTENER
from tests.inspection.support import NO_DEFAULTS
from tests.inspection.support import meta as _meta
from tests.inspection.support import model_of as _model
from tests.inspection.support import rule_of as _rule

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
