"""Expectations of Kuma's API, written by hand from Kuma v2.14.3's published OpenAPI description
(docs/generated/openapi.yaml; the spec itself is not in this repository and is not read at test
time). Each expectation names the component it was transcribed from.

`expectations(...)` lists (path, schema, component) for every path the control plane serves for
example-repo; test_contract.py calls each path and validates the answer against its schema.

Where the description and the JSON that Kuma's own server writes disagree, the expectation
accepts what Kuma's server writes (read in its Go types and golden files), and says so:
protobuf timestamps and 64-bit counters in overviews are protojson strings, a list's `next` is
null on its last page, and an error may have no `instance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.api.kuma.contract_inspect import INSPECT_DATAPLANES, INSPECT_RULES, POLICIES_LIST, XDS_CONFIG
from tests.api.kuma.contract_kinds import ITEMS
from tests.api.kuma.contract_schema import (
    BOOLEAN,
    GLOBAL_KINDS,
    INTEGER,
    KRI,
    LABELS,
    NUMBER,
    OBJECT,
    STRING,
    TIME,
    Schema,
    array,
    enum,
    nullable,
    obj,
)

__all__ = ["Expectation", "expectations", "listing", "error", "PLURALS", "ITEMS", "OVERVIEW_CONNECTED"]

# The path segment of each kind, as the spec's paths spell it (`/meshes/{mesh}/<plural>`, `/<plural>`).
PLURALS: Mapping[str, str] = {
    "Mesh": "meshes",
    "Dataplane": "dataplanes",
    "MeshGateway": "meshgateways",
    "Secret": "secrets",
    "ZoneIngress": "zoneingresses",
    "ZoneEgress": "zoneegresses",
    "HostnameGenerator": "hostnamegenerators",
    "MeshService": "meshservices",
    "MeshExternalService": "meshexternalservices",
    "MeshMultiZoneService": "meshmultizoneservices",
    "MeshIdentity": "meshidentities",
    "MeshTrust": "meshtrusts",
    "MeshOpenTelemetryBackend": "meshopentelemetrybackends",
    "Workload": "workloads",
    "MeshAccessLog": "meshaccesslogs",
    "MeshCircuitBreaker": "meshcircuitbreakers",
    "MeshFaultInjection": "meshfaultinjections",
    "MeshHealthCheck": "meshhealthchecks",
    "MeshHTTPRoute": "meshhttproutes",
    "MeshLoadBalancingStrategy": "meshloadbalancingstrategies",
    "MeshMetric": "meshmetrics",
    "MeshPassthrough": "meshpassthroughs",
    "MeshProxyPatch": "meshproxypatches",
    "MeshRateLimit": "meshratelimits",
    "MeshRetry": "meshretries",
    "MeshTCPRoute": "meshtcproutes",
    "MeshTLS": "meshtlses",
    "MeshTimeout": "meshtimeouts",
    "MeshTrace": "meshtraces",
    "MeshTrafficPermission": "meshtrafficpermissions",
}


def listing(item: Schema) -> Schema:
    """components/responses/<Kind>List: items, total (a number) and next (a URL). Kuma's server
    always writes all three (rest.ResourceList, no omitempty), next as null on the last page."""
    return obj({"items": array(item), "total": NUMBER, "next": nullable(STRING)})


# components/schemas/InvalidParameters: field, reason (and source) required. Kuma's server
# writes no `source` (types.InvalidParameter has none), so it is typed but not required.
_INVALID_PARAMETER = obj(
    {"field": STRING, "reason": STRING},
    {"rule": STRING, "choices": array(STRING), "source": enum(["body", "query", "header", "path"])},
)


def error(status: int) -> Schema:
    """components/schemas/Error (components/responses/BadRequest; NotFoundError for 404 adds
    `status: enum [404]`): status, title, type, detail and instance required. Kuma's server omits
    `instance` when no trace is recording (types.Error: omitempty), so it is not required."""
    return obj(
        {"type": STRING, "status": enum([status], "integer"), "title": STRING, "detail": STRING},
        {"instance": STRING, "invalid_parameters": array(_INVALID_PARAMETER)},
    )


# components/schemas/Index (components/responses/IndexResponse)
INDEX = obj(
    {"hostname": STRING, "product": STRING, "version": STRING, "instanceId": STRING, "clusterId": STRING, "gui": STRING},
    {"basedOnKuma": STRING},
)

# components/schemas/ResourceTypeDescriptionList, ResourceTypeDescription and PolicyDescription
_POLICY_DESCRIPTION = obj(
    {"isTargetRef": BOOLEAN, "hasToTargetRef": BOOLEAN, "hasFromTargetRef": BOOLEAN, "hasRulesTargetRef": BOOLEAN, "isFromAsRules": BOOLEAN}
)
RESOURCE_TYPES = obj(
    {
        "resources": array(
            obj(
                {
                    "name": STRING,
                    "scope": enum(["Global", "Mesh"]),
                    "readOnly": BOOLEAN,
                    "path": STRING,
                    "singularDisplayName": STRING,
                    "pluralDisplayName": STRING,
                    "includeInFederation": BOOLEAN,
                    "shortName": STRING,
                },
                {"policy": _POLICY_DESCRIPTION},
            )
        )
    }
)

# components/schemas/GlobalInsightBase with BaseStatus, FullStatus and the *Stats it refers to.
_BASE_STATUS = obj({"online": INTEGER, "total": INTEGER})
_FULL_STATUS = obj({"online": INTEGER, "total": INTEGER, "offline": INTEGER, "partiallyDegraded": INTEGER})
_TOTAL = obj({"total": INTEGER})
GLOBAL_INSIGHT = obj(
    {
        "createdAt": TIME,
        # ServicesStats requires `total` without typing it; the spec's example has a number.
        "services": obj(
            {
                "total": INTEGER,
                "internal": _FULL_STATUS,
                "external": _TOTAL,
                "gatewayBuiltin": _FULL_STATUS,
                "gatewayDelegated": _FULL_STATUS,
            }
        ),
        "zones": obj({"controlPlanes": _BASE_STATUS, "zoneEgresses": _BASE_STATUS, "zoneIngresses": _BASE_STATUS}),
        "dataplanes": obj({"standard": _FULL_STATUS, "gatewayBuiltin": _FULL_STATUS, "gatewayDelegated": _FULL_STATUS}),
        "policies": _TOTAL,
        "meshes": _TOTAL,
        "resources": {"type": "object", "additionalProperties": _TOTAL},
    }
)

# components/schemas/DataplaneOverview, DataplaneOverviewWithMeta (= Meta + DataplaneOverview).
# The spec's generated schema types protobuf timestamps as {seconds, nanos} and the uint64
# counters as integers; Kuma's server writes them with protojson: RFC 3339 strings and decimal
# strings (kumactl's inspect-dataplanes.golden.json: "responsesSent": "10").
_COUNTER = {"anyOf": [INTEGER, {"type": "string", "pattern": r"^\d+$"}]}
_DISCOVERY_STATS = obj(None, {"responsesSent": _COUNTER, "responsesAcknowledged": _COUNTER, "responsesRejected": _COUNTER})
_SUBSCRIPTION = obj(
    None,
    {
        "id": STRING,
        "controlPlaneInstanceId": STRING,
        "connectTime": TIME,
        "disconnectTime": TIME,
        "generation": INTEGER,
        "status": obj(
            None,
            {
                "lastUpdateTime": TIME,
                "total": _DISCOVERY_STATS,
                "cds": _DISCOVERY_STATS,
                "eds": _DISCOVERY_STATS,
                "lds": _DISCOVERY_STATS,
                "rds": _DISCOVERY_STATS,
            },
        ),
        "version": obj(None, {"kumaDp": OBJECT, "envoy": obj(None, {"version": STRING, "build": STRING}), "dependencies": LABELS}),
    },
)
_INSIGHT = obj(None, {"subscriptions": array(_SUBSCRIPTION), "mTLS": OBJECT, "metadata": OBJECT})
# Meta requires labels, but Kuma's overview omits empty ones (rest ResourceMeta: omitempty); the
# type Kuma writes is "DataplaneOverview".
_OVERVIEW_META = {"type": enum(["DataplaneOverview"]), "mesh": STRING, "name": STRING, "creationTime": TIME, "modificationTime": TIME}
# DataplaneOverview.dataplane: the Dataplane's fields (networking, metrics, probes) as in DataplaneItem.
_DATAPLANE = obj(None, {key: ITEMS["Dataplane"]["properties"][key] for key in ("networking", "metrics", "probes")})
_OVERVIEW_OPTIONAL = {"labels": LABELS, "kri": KRI}
OVERVIEW = obj(
    _OVERVIEW_META,
    {**_OVERVIEW_OPTIONAL, "dataplane": _DATAPLANE, "dataplaneInsight": _INSIGHT},
)
# components/responses/GetDataplaneOverviewListResponse: total (integer), next, items.
OVERVIEW_LIST = obj({"total": INTEGER, "items": array(OVERVIEW), "next": nullable(STRING)})
# Not a spec schema: what the overview of a dataplane with a live ADS stream must at least show
# (a subscription with its connect time and per-type stats), the fields above made required.
_CONNECTED_SUBSCRIPTION = obj(
    {"id": STRING, "connectTime": TIME, "status": obj({"total": _DISCOVERY_STATS}, _SUBSCRIPTION["properties"]["status"]["properties"])},
    _SUBSCRIPTION["properties"],
)
OVERVIEW_CONNECTED = obj(
    {
        **_OVERVIEW_META,
        "dataplane": obj({"networking": _DATAPLANE["properties"]["networking"]}),
        "dataplaneInsight": obj({"subscriptions": array(_CONNECTED_SUBSCRIPTION, minItems=1)}),
    },
    _OVERVIEW_OPTIONAL,
)


@dataclass(frozen=True)
class Expectation:
    path: str
    schema: Schema
    component: str  # the spec's component the schema was transcribed from


def _about(schema: Schema, values: Mapping[str, str], key: str | None = None) -> Schema:
    """The schema, for the one resource a path names: these properties (of `key`, if given) hold
    these values."""
    constraint: Schema = {"properties": {k: {"const": v} for k, v in values.items()}}
    if key is not None:
        constraint = {"properties": {key: constraint}}
    return {"allOf": [schema, constraint]}


def expectations(names: Mapping[str, Sequence[str]], mesh: str, connected: str) -> list[Expectation]:
    """Every path served for a repository holding `names` (resource names by kind) in `mesh`;
    `connected` is the dataplane with a running Envoy."""
    out = [
        Expectation("/", INDEX, "responses/IndexResponse"),
        Expectation("/_resources", RESOURCE_TYPES, "responses/ResourceTypeDescriptionListResponse"),
        Expectation("/global-insight", GLOBAL_INSIGHT, "responses/GlobalInsightResponse"),
    ]
    for kind, kind_names in sorted(names.items()):
        plural, item = PLURALS[kind], ITEMS[kind]
        base = f"/{plural}" if kind in GLOBAL_KINDS else f"/meshes/{mesh}/{plural}"
        out.append(Expectation(base, listing(item), f"responses/{kind}List"))
        out += [
            Expectation(
                f"{base}/{name}",
                _about(item, {"name": name} if kind in GLOBAL_KINDS else {"name": name, "mesh": mesh}),
                f"schemas/{kind}Item",
            )
            for name in kind_names
        ]
    # Kuma also lists a mesh-scoped kind across all meshes at the top level.
    out.append(Expectation("/dataplanes", listing(ITEMS["Dataplane"]), "responses/DataplaneList"))
    out.append(Expectation("/meshtimeouts", listing(ITEMS["MeshTimeout"]), "responses/MeshTimeoutList"))
    dataplanes = f"/meshes/{mesh}/dataplanes"
    out.append(Expectation(f"{dataplanes}/_overview", OVERVIEW_LIST, "responses/GetDataplaneOverviewListResponse"))
    for name in names["Dataplane"]:
        this = {"name": name, "mesh": mesh}
        overview = _about(OVERVIEW_CONNECTED if name == connected else OVERVIEW, this)
        out.append(Expectation(f"{dataplanes}/{name}/_overview", overview, "responses/GetDataplaneOverviewResponse"))
        rules = _about(INSPECT_RULES, {**this, "type": "Dataplane"}, key="resource")
        out.append(Expectation(f"{dataplanes}/{name}/_rules", rules, "responses/InspectRulesResponse"))
        out.append(Expectation(f"{dataplanes}/{name}/_policies", POLICIES_LIST, "responses/ProxyPolicyConfResponse"))
    out.append(Expectation(f"{dataplanes}/{connected}/_config", XDS_CONFIG, "responses/GetDataplaneXDSConfigResponse"))
    # `_rules` of a builtin gateway: the spec's resourceType enum is dataplanes|meshgateways.
    for name in names.get("MeshGateway", ()):
        rules = _about(INSPECT_RULES, {"type": "MeshGateway", "name": name, "mesh": mesh}, key="resource")
        out.append(Expectation(f"/meshes/{mesh}/meshgateways/{name}/_rules", rules, "responses/InspectRulesResponse"))
    for kind, kind_names in sorted(names.items()):
        if kind in ITEMS and "targetRef" in ITEMS[kind]["properties"].get("spec", {}).get("properties", {}):
            out += [
                Expectation(
                    f"/meshes/{mesh}/{PLURALS[kind]}/{name}/_resources/dataplanes",
                    INSPECT_DATAPLANES,
                    "responses/InspectDataplanesForPolicyResponse",
                )
                for name in kind_names
            ]
    for name in names.get("MeshService", ()):
        out.append(
            Expectation(
                f"/meshes/{mesh}/meshservices/{name}/_dataplanes", INSPECT_DATAPLANES, "responses/InspectDataplanesForPolicyResponse"
            )
        )
    return out
