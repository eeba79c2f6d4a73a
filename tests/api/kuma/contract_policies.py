"""The contract's item schemas for Kuma's targetRef policies: hand transcriptions of
`components/schemas/<Policy>Item` in Kuma v2.14.3's OpenAPI description — spec.targetRef and each
policy's to/from/rules entries with the key fields of their `default`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.api.kuma.contract_schema import BOOLEAN, DURATION, INT_OR_STRING, INTEGER, LABELS, OBJECT, STRING, Schema, array, enum, item, obj

__all__ = ["POLICY_ITEMS", "TARGET_REF", "TARGET_REF_KINDS"]

# The targetRef kinds every policy's schema allows (the same enum in each *Item).
TARGET_REF_KINDS = (
    "Mesh",
    "MeshSubset",
    "MeshGateway",
    "MeshService",
    "MeshExternalService",
    "MeshMultiZoneService",
    "MeshServiceSubset",
    "MeshHTTPRoute",
    "Dataplane",
)
_REF_FIELDS: Mapping[str, Schema] = {
    "name": STRING,
    "mesh": STRING,
    "namespace": STRING,
    "sectionName": STRING,
    "labels": LABELS,
    "tags": LABELS,
    "proxyTypes": array(enum(["Sidecar", "Gateway"])),
}
TARGET_REF = obj({"kind": enum(TARGET_REF_KINDS)}, _REF_FIELDS)
# backendRefs: a targetRef plus port and weight (minimum 0).
BACKEND_REF = obj({"kind": enum(TARGET_REF_KINDS)}, {**_REF_FIELDS, "port": INTEGER, "weight": {"type": "integer", "minimum": 0}})
OTEL_BACKEND_REF = obj({"kind": enum(["MeshOpenTelemetryBackend"])}, {"name": STRING, "labels": LABELS})


def _policy(
    kind: str, *, to: Schema | None = None, from_: Schema | None = None, rules: Schema | None = None, default: Schema | None = None
) -> Schema:
    """A targetRef policy: spec.targetRef plus whichever of to/from/rules/default its schema has."""
    props: dict[str, Schema] = {"targetRef": TARGET_REF}
    for key, part in (("to", to), ("from", from_), ("rules", rules)):
        if part is not None:
            props[key] = array(part)
    if default is not None:
        props["default"] = default
    return item(kind, obj(None, props))


def _entry(default: Schema, *, default_required: bool = False) -> Schema:
    """A to[] or from[] entry: `targetRef` always required, `default` in some policies."""
    if default_required:
        return obj({"targetRef": TARGET_REF, "default": default})
    return obj({"targetRef": TARGET_REF}, {"default": default})


# components/schemas/MeshAccessLogItem: backends[].type Tcp|File|OpenTelemetry, format.type Plain|Json.
_LOG_FORMAT = obj({"type": enum(["Plain", "Json"])}, {"plain": STRING, "json": array(obj({"key": STRING, "value": STRING}))})
_ACCESS_LOG_DEFAULT = obj(
    None,
    {
        "backends": array(
            obj(
                {"type": enum(["Tcp", "File", "OpenTelemetry"])},
                {
                    "file": obj({"path": STRING}, {"format": _LOG_FORMAT}),
                    "tcp": obj({"address": STRING}, {"format": _LOG_FORMAT}),
                    "openTelemetry": obj(None, {"backendRef": OTEL_BACKEND_REF, "endpoint": STRING}),
                },
            )
        )
    },
)
# components/schemas/MeshCircuitBreakerItem
_CIRCUIT_BREAKER_DEFAULT = obj(None, {"connectionLimits": OBJECT, "outlierDetection": OBJECT})
# components/schemas/MeshFaultInjectionItem: default.http[] with abort/delay/responseBandwidth.
_FAULT_DEFAULT = obj(
    None,
    {
        "http": array(
            obj(
                None,
                {
                    "abort": obj({"httpStatus": INTEGER, "percentage": INT_OR_STRING}),
                    "delay": obj({"percentage": INT_OR_STRING, "value": DURATION}),
                    "responseBandwidth": obj({"limit": STRING, "percentage": INT_OR_STRING}),
                },
            )
        )
    },
)
# components/schemas/MeshHealthCheckItem
_HEALTH_CHECK_DEFAULT = obj(
    None,
    {
        "interval": DURATION,
        "timeout": DURATION,
        "healthyThreshold": INTEGER,
        "unhealthyThreshold": INTEGER,
        "http": obj(None, {"path": STRING, "expectedStatuses": array(INTEGER), "disabled": BOOLEAN}),
        "tcp": OBJECT,
        "grpc": OBJECT,
    },
)
# components/schemas/MeshHTTPRouteItem: to[] requires rules and targetRef; rules[] default and matches.
_HTTP_MATCH = obj(
    None,
    {
        "path": obj({"type": enum(["Exact", "PathPrefix", "RegularExpression"]), "value": STRING}),
        "method": enum(["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]),
        "headers": array(obj({"name": STRING}, {"type": enum(["Exact", "Present", "RegularExpression", "Absent", "Prefix"])})),
        "queryParams": array(obj({"name": STRING, "type": enum(["Exact", "RegularExpression"]), "value": STRING})),
    },
)
_HTTP_FILTER = obj(
    {"type": enum(["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror"])},
    {"requestMirror": obj({"backendRef": BACKEND_REF})},
)
_HTTP_ROUTE_TO = obj(
    {
        "targetRef": TARGET_REF,
        "rules": array(
            obj({"matches": array(_HTTP_MATCH), "default": obj(None, {"backendRefs": array(BACKEND_REF), "filters": array(_HTTP_FILTER)})})
        ),
    },
    {"hostnames": array(STRING)},
)
# components/schemas/MeshLoadBalancingStrategyItem
_LB_DEFAULT = obj(
    None,
    {
        "loadBalancer": obj({"type": enum(["RoundRobin", "LeastRequest", "RingHash", "Random", "Maglev"])}),
        "hashPolicies": array(obj({"type": enum(["Header", "Cookie", "Connection", "SourceIP", "QueryParameter", "FilterState"])})),
        "localityAwareness": OBJECT,
    },
)
# components/schemas/MeshMetricItem: default.backends[].type Prometheus|OpenTelemetry.
_METRIC_DEFAULT = obj(
    None,
    {
        "sidecar": obj(None, {"profiles": obj(None, {"appendProfiles": array(obj({"name": enum(["All", "Basic", "None"])}))})}),
        "applications": array(obj({"port": INTEGER}, {"path": STRING, "name": STRING, "address": STRING})),
        "backends": array(
            obj(
                {"type": enum(["Prometheus", "OpenTelemetry"])},
                {"prometheus": obj(None, {"port": INTEGER, "path": STRING, "clientId": STRING}), "openTelemetry": OBJECT},
            )
        ),
    },
)
# components/schemas/MeshPassthroughItem
_PASSTHROUGH_DEFAULT = obj(
    None,
    {
        "passthroughMode": enum(["All", "Matched", "None"]),
        "appendMatch": array(
            obj(
                {"type": enum(["Domain", "IP", "CIDR"]), "value": STRING},
                {"port": INTEGER, "protocol": enum(["tcp", "tls", "grpc", "http", "http2", "mysql"])},
            )
        ),
    },
)
# components/schemas/MeshProxyPatchItem: spec.default is required.
_PATCH_OPERATION = enum(["Add", "Remove", "Patch"])
_FILTER_OPERATION = enum(["Remove", "Patch", "AddFirst", "AddBefore", "AddAfter", "AddLast"])
_PROXY_PATCH_SPEC = obj(
    {
        "default": obj(
            None,
            {
                "appendModifications": array(
                    obj(
                        None,
                        {
                            "cluster": obj({"operation": _PATCH_OPERATION}),
                            "listener": obj({"operation": _PATCH_OPERATION}),
                            "httpFilter": obj({"operation": _FILTER_OPERATION}),
                            "networkFilter": obj({"operation": _FILTER_OPERATION}),
                            "virtualHost": obj({"operation": _PATCH_OPERATION, "match": OBJECT}),
                        },
                    )
                )
            },
        )
    },
    {"targetRef": TARGET_REF},
)
# components/schemas/MeshRateLimitItem: local.http.requestRate and local.tcp.connectionRate need num and interval.
_RATE = obj({"num": INTEGER, "interval": DURATION})
_RATE_LIMIT_DEFAULT = obj(
    None,
    {
        "local": obj(
            None,
            {
                "http": obj(None, {"requestRate": _RATE, "disabled": BOOLEAN, "onRateLimit": OBJECT}),
                "tcp": obj(None, {"connectionRate": _RATE, "disabled": BOOLEAN}),
            },
        )
    },
)
# components/schemas/MeshRetryItem
_RETRY_DEFAULT = obj(
    None,
    {
        "http": obj(None, {"numRetries": INTEGER, "perTryTimeout": DURATION, "retryOn": array(STRING), "backOff": OBJECT}),
        "tcp": obj(None, {"maxConnectAttempt": INTEGER}),
        "grpc": obj(
            None,
            {
                "numRetries": INTEGER,
                "retryOn": array(enum(["Canceled", "DeadlineExceeded", "Internal", "ResourceExhausted", "Unavailable"])),
            },
        ),
    },
)
# components/schemas/MeshTCPRouteItem: to[] requires rules and targetRef; rules[] requires default.
_TCP_ROUTE_TO = obj({"targetRef": TARGET_REF, "rules": array(obj({"default": obj(None, {"backendRefs": array(BACKEND_REF)})}))})
# components/schemas/MeshTimeoutItem
_TIMEOUT_DEFAULT = obj(
    None,
    {
        "connectionTimeout": DURATION,
        "idleTimeout": DURATION,
        "http": obj(
            None,
            {
                "requestTimeout": DURATION,
                "streamIdleTimeout": DURATION,
                "maxStreamDuration": DURATION,
                "maxConnectionDuration": DURATION,
                "requestHeadersTimeout": DURATION,
            },
        ),
    },
)
# components/schemas/MeshTLSItem
_TLS_DEFAULT = obj(None, {"mode": enum(["Permissive", "Strict"]), "tlsCiphers": array(STRING), "tlsVersion": OBJECT})
# components/schemas/MeshTraceItem: backends[].type Zipkin|Datadog|OpenTelemetry.
_TRACE_DEFAULT = obj(
    None,
    {
        "backends": array(
            obj(
                {"type": enum(["Zipkin", "Datadog", "OpenTelemetry"])},
                {
                    "zipkin": obj({"url": STRING}, {"apiVersion": enum(["httpJson", "httpProto"])}),
                    "datadog": obj({"url": STRING}),
                    "openTelemetry": obj(None, {"backendRef": OTEL_BACKEND_REF, "endpoint": STRING}),
                },
            )
        ),
        "sampling": obj(None, {"overall": INT_OR_STRING, "client": INT_OR_STRING, "random": INT_OR_STRING}),
        "tags": array(obj({"name": STRING}, {"literal": STRING, "header": obj({"name": STRING}, {"default": STRING})})),
    },
)
# components/schemas/MeshTrafficPermissionItem: from[].default.action Allow|Deny|AllowWithShadowDeny.
_MTP_FROM = _entry(obj(None, {"action": enum(["Allow", "Deny", "AllowWithShadowDeny"])}))
_MTP_RULE = obj({"default": obj(None, {"allow": array(OBJECT), "deny": array(OBJECT), "allowWithShadowDeny": array(OBJECT)})})
_RULE_MATCHES = array(OBJECT)
POLICY_ITEMS: dict[str, Schema] = {
    # components/schemas/MeshAccessLogItem
    "MeshAccessLog": _policy(
        "MeshAccessLog",
        to=_entry(_ACCESS_LOG_DEFAULT, default_required=True),
        from_=_entry(_ACCESS_LOG_DEFAULT, default_required=True),
        rules=obj({"default": _ACCESS_LOG_DEFAULT}, {"matches": _RULE_MATCHES}),
    ),
    # components/schemas/MeshCircuitBreakerItem
    "MeshCircuitBreaker": _policy(
        "MeshCircuitBreaker",
        to=_entry(_CIRCUIT_BREAKER_DEFAULT),
        from_=_entry(_CIRCUIT_BREAKER_DEFAULT),
        rules=obj(None, {"default": _CIRCUIT_BREAKER_DEFAULT}),
    ),
    # components/schemas/MeshFaultInjectionItem
    "MeshFaultInjection": _policy(
        "MeshFaultInjection",
        to=_entry(_FAULT_DEFAULT),
        from_=_entry(_FAULT_DEFAULT),
        rules=obj({"default": _FAULT_DEFAULT}, {"matches": _RULE_MATCHES}),
    ),
    # components/schemas/MeshHealthCheckItem
    "MeshHealthCheck": _policy("MeshHealthCheck", to=_entry(_HEALTH_CHECK_DEFAULT)),
    # components/schemas/MeshHTTPRouteItem
    "MeshHTTPRoute": _policy("MeshHTTPRoute", to=_HTTP_ROUTE_TO),
    # components/schemas/MeshLoadBalancingStrategyItem
    "MeshLoadBalancingStrategy": _policy("MeshLoadBalancingStrategy", to=_entry(_LB_DEFAULT)),
    # components/schemas/MeshMetricItem
    "MeshMetric": _policy("MeshMetric", default=_METRIC_DEFAULT),
    # components/schemas/MeshPassthroughItem
    "MeshPassthrough": _policy("MeshPassthrough", default=_PASSTHROUGH_DEFAULT),
    # components/schemas/MeshProxyPatchItem
    "MeshProxyPatch": item("MeshProxyPatch", _PROXY_PATCH_SPEC),
    # components/schemas/MeshRateLimitItem
    "MeshRateLimit": _policy(
        "MeshRateLimit",
        to=_entry(_RATE_LIMIT_DEFAULT),
        from_=_entry(_RATE_LIMIT_DEFAULT),
        rules=obj(None, {"default": _RATE_LIMIT_DEFAULT, "matches": _RULE_MATCHES}),
    ),
    # components/schemas/MeshRetryItem
    "MeshRetry": _policy("MeshRetry", to=_entry(_RETRY_DEFAULT)),
    # components/schemas/MeshTCPRouteItem
    "MeshTCPRoute": _policy("MeshTCPRoute", to=_TCP_ROUTE_TO),
    # components/schemas/MeshTLSItem
    "MeshTLS": _policy("MeshTLS", from_=_entry(_TLS_DEFAULT), rules=obj(None, {"default": _TLS_DEFAULT})),
    # components/schemas/MeshTimeoutItem
    "MeshTimeout": _policy(
        "MeshTimeout",
        to=_entry(_TIMEOUT_DEFAULT),
        from_=_entry(_TIMEOUT_DEFAULT),
        rules=obj(None, {"default": _TIMEOUT_DEFAULT, "matches": _RULE_MATCHES}),
    ),
    # components/schemas/MeshTraceItem
    "MeshTrace": _policy("MeshTrace", default=_TRACE_DEFAULT),
    # components/schemas/MeshTrafficPermissionItem
    "MeshTrafficPermission": _policy("MeshTrafficPermission", from_=_MTP_FROM, rules=_MTP_RULE),
}
