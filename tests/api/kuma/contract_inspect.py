"""The contract's schemas for Kuma's inspect endpoints: hand transcriptions of the inspect part of
Kuma v2.14.3's OpenAPI description (components/schemas InspectRules, InspectDataplanesForPolicy,
DataplaneXDSConfig, PoliciesList and the schemas they refer to).

Where the description and the JSON Kuma's own server writes disagree, the expectation follows
the spec as far as Kuma's server does, and the comment says where it stops (read in Kuma's
pkg/api-server/testdata/resources/inspect/** golden files and api/openapi/types).
"""

from __future__ import annotations

from tests.api.kuma.contract_schema import BOOLEAN, INTEGER, KRI, LABELS, OBJECT, STRING, array, enum, nullable, obj

__all__ = ["META", "INSPECT_RULES", "INSPECT_DATAPLANES", "XDS_CONFIG", "POLICIES_LIST", "LAYOUT", "INBOUND_POLICIES", "ROUTES_LIST"]

# components/schemas/Meta: type, mesh, name and labels required (Go: `labels` without omitempty).
META = obj({"type": STRING, "mesh": STRING, "name": STRING, "labels": LABELS}, {"kri": KRI})
# `conf` is `type: object, additionalProperties: true` wherever a rule carries one.
_CONF = OBJECT

# components/schemas/RuleMatcher
_MATCHER = obj({"key": STRING, "value": STRING, "not": BOOLEAN})
# components/schemas/Rule
_RULE = obj({"matchers": array(_MATCHER), "conf": _CONF, "origin": array(META)})
# components/schemas/ResourceRuleOrigin
_RESOURCE_RULE_ORIGIN = obj(None, {"resourceMeta": META, "ruleIndex": INTEGER})
# components/schemas/ResourceRule: `conf` is an array of objects here.
_RESOURCE_RULE = obj(
    {"resourceMeta": META, "conf": array(_CONF), "origin": array(_RESOURCE_RULE_ORIGIN)},
    {"resourceSectionName": STRING},
)
# components/schemas/Inbound
_INBOUND = obj({"tags": LABELS, "port": INTEGER}, {"name": STRING})
# components/schemas/FromRule
_FROM_RULE = obj({"inbound": _INBOUND, "rules": array(_RULE)})
# components/schemas/InboundRule, inside components/schemas/InboundRulesEntry
_INBOUND_RULE = obj({"conf": array(_CONF), "origin": array(_RESOURCE_RULE_ORIGIN)}, {"match": OBJECT})
_INBOUND_RULES_ENTRY = obj({"inbound": _INBOUND, "rules": array(_INBOUND_RULE)})
# components/schemas/ProxyRule
_PROXY_RULE = obj({"conf": _CONF, "origin": array(META)})
# components/schemas/InspectRule: only `type` is required; the rest is typed when present.
_INSPECT_RULE = obj(
    {"type": STRING},
    {
        "proxyRule": _PROXY_RULE,
        "toRules": array(_RULE),
        "toResourceRules": array(_RESOURCE_RULE),
        "fromRules": array(_FROM_RULE),
        "inboundRules": array(_INBOUND_RULES_ENTRY),
        "warnings": array(STRING),
    },
)
# components/schemas/HttpMatch: hash and match required. The spec types `match` as an object
# (x-go-type interface{}), but Kuma's server writes the route's list of matches there (golden
# _rules/meshhttproute.golden.json), so its type is left open.
_HTTP_MATCH = obj({"hash": STRING, "match": {}})

# components/schemas/InspectRules (responses/InspectRulesResponse)
INSPECT_RULES = obj({"resource": META, "rules": array(_INSPECT_RULE), "httpMatches": array(_HTTP_MATCH)})

# components/schemas/InspectDataplanesForPolicy (responses/InspectDataplanesForPolicyResponse):
# total and items required; `next` a string (Go: *string with omitempty, so absent or a URL).
# Its items are dataplanes (the spec's example: `type: Dataplane`).
INSPECT_DATAPLANES = obj(
    {"total": INTEGER, "items": array({"allOf": [META, {"properties": {"type": {"const": "Dataplane"}}}]})},
    {"next": nullable(STRING)},
)

# components/schemas/DataplaneXDSConfig (responses/GetDataplaneXDSConfigResponse): `xds` an object;
# `diff` JsonPatchItems (components/schemas/JsonPatchItem: op add|remove|test, path, value).
# The spec says no more of `xds` than "the raw XDS config as an inline JSON object"; Kuma's server
# keys it by type URL, then by resource name (golden _rules/proxyconfig_shadow-false.golden.json),
# and a proxy that is served has at least its listeners and clusters there.
_XDS = {
    "type": "object",
    "propertyNames": {"pattern": r"^type\.googleapis\.com/envoy\."},
    "additionalProperties": {"type": "object", "additionalProperties": OBJECT},
    "minProperties": 2,
}
XDS_CONFIG = obj(
    {"xds": _XDS},
    {"diff": array(obj({"op": enum(["add", "remove", "test"]), "path": STRING, "value": {}}))},
)

# components/schemas/PoliciesList (responses/ProxyPolicyConfResponse, OutboundPolicyConfResponse,
# RoutePolicyConfResponse): policies[] of PolicyConf (kind, conf, origins[] of PolicyOrigin {kri}).
# `conf` is an object in the spec (x-go-type interface{}); for an outbound or a route Kuma's server
# writes the list of confs in merge order there (golden _policies/outbounds/*.golden.json).
_POLICY_CONF = {"anyOf": [_CONF, array(_CONF)]}
POLICIES_LIST = obj({"policies": array(obj({"kind": STRING, "conf": _POLICY_CONF, "origins": array(obj({"kri": KRI}))}))})

# components/schemas/DataplaneNetworkingLayout (responses/DataplaneNetworkingLayoutResponse), with
# DataplaneInbound/DataplaneOutbound (kri, port, protocol, proxyResourceName) and DataplaneListener.
_PORT_VIEW = obj({"kri": KRI, "port": INTEGER, "protocol": STRING, "proxyResourceName": STRING})
LAYOUT = obj(
    {
        "kri": KRI,
        "labels": LABELS,
        "inbounds": array(_PORT_VIEW),
        "outbounds": array(_PORT_VIEW),
        "listeners": array(obj({"kri": KRI, "type": enum(["ZoneIngress", "ZoneEgress"]), "port": INTEGER, "proxyResourceName": STRING})),
    },
    {"spiffeId": STRING},
)
# components/schemas/InboundPoliciesList (responses/InboundPolicyConfResponse): policies[] of
# InboundPolicyConf (kind, rules[] of PolicyRule {conf, kri?}, origins[]).
INBOUND_POLICIES = obj(
    {"policies": array(obj({"kind": STRING, "rules": array(obj({"conf": _CONF}, {"kri": KRI})), "origins": array(obj({"kri": KRI}))}))}
)
# components/schemas/RoutesList (responses/RoutesListResponse): routes[] of RouteConf (kind,
# rules[] of RouteRules {kri, matches[], conf}, origins[]).
ROUTES_LIST = obj(
    {
        "routes": array(
            obj(
                {
                    "kind": STRING,
                    # A MeshTCPRoute's rule has no KRI nor matches: Kuma writes "" and null
                    # (golden _routes/meshservice_meshtcproute.golden.json).
                    "rules": array(obj({"kri": STRING, "matches": nullable(array(OBJECT)), "conf": _CONF})),
                    "origins": array(obj({"kri": KRI})),
                }
            )
        )
    }
)
