"""inspect_rules on small meshes: Kuma's InspectRules of inbounds, proxy-wide policies, the
catch-all `to` rule, builtin gateways and MeshGateways, with the expectations of Kuma's own
`_rules` golden cases (pkg/api-server/testdata/resources/inspect/dataplanes/_rules) where our
proxy has the outbound they describe (routes and resource rules: test_route_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.inspection.rules import MTLS_WARNING, UnknownResource, gateway_rules, inspect_rules
from tests.inspection.support import NO_DEFAULTS
from tests.inspection.support import meta as _meta
from tests.inspection.support import model_of as _model
from tests.inspection.support import rule_of as _rule

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
