"""MeshTrace's tracer and collector cluster for cases the goldens do not show: Kuma's own
golden (inbound-outbound-zipkin) field by field, an https Zipkin collector, decimal sampling,
an unresolvable OpenTelemetry backendRef, and a proxy without a service."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from reconciler.frozen import freeze
from reconciler.policies.core.plugin import OtelBackend, ProxyFacts
from reconciler.policies.meshtrace.envoy import proxy_resources, tracing

ZIPKIN_URL = "http://jaeger-collector.mesh-observability:9411/api/v2/spans"
ZIPKIN: dict[str, Any] = {"type": "Zipkin", "zipkin": {"url": ZIPKIN_URL}}


def as_json(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message)
    return out


def test_kuma_inbound_outbound_zipkin_golden() -> None:
    # Kuma v2.14.3 meshtrace/plugin/v1alpha1/testdata/inbound-outbound-zipkin.listener.golden.yaml,
    # with this control plane's zone name.
    conf = {
        "backends": [{"type": "Zipkin", "zipkin": {"url": ZIPKIN_URL, "apiVersion": "httpProto", "traceId128bit": True}}],
        "sampling": {"overall": 10, "client": 20, "random": 50},
        "tags": [
            {"name": "app", "literal": "backend"},
            {"name": "app_code", "header": {"name": "app_code"}},
            {"name": "client_id", "header": {"name": "client_id", "default": "none"}},
        ],
    }
    got = tracing(conf, mesh="default", service="backend", direction="inbound", destination="", gateway=False)
    assert got is not None
    assert as_json(got) == {
        "clientSampling": {"value": 20.0},
        "customTags": [
            {"literal": {"value": "backend"}, "tag": "app"},
            {"requestHeader": {"name": "app_code"}, "tag": "app_code"},
            {"requestHeader": {"defaultValue": "none", "name": "client_id"}, "tag": "client_id"},
            {"literal": {"value": "default"}, "tag": "kuma.mesh"},
            {"literal": {"value": "default"}, "tag": "kuma.zone"},
        ],
        "overallSampling": {"value": 10.0},
        "provider": {
            "name": "envoy.tracers.zipkin",
            "typedConfig": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                "collectorCluster": "meshtrace:zipkin",
                "collectorEndpoint": "/api/v2/spans",
                "collectorEndpointVersion": "HTTP_PROTO",
                "collectorHostname": "jaeger-collector.mesh-observability:9411",
                "sharedSpanContext": True,
                "traceId128bit": True,
            },
        },
        "randomSampling": {"value": 50.0},
        "spawnUpstreamSpan": False,
    }


def test_decimal_sampling_strings_are_percentages() -> None:
    conf = {"backends": [ZIPKIN], "sampling": {"overall": "0.5", "random": "99.99"}}
    got = tracing(conf, mesh="default", service="web", direction="outbound", destination="backend", gateway=False)
    assert got is not None
    assert (got.overall_sampling.value, got.random_sampling.value) == (0.5, 99.99)
    assert not got.HasField("client_sampling")  # unset: Envoy's 100 %


def test_https_zipkin_collector_gets_tls_with_its_host_as_sni() -> None:
    conf = {"backends": [{"type": "Zipkin", "zipkin": {"url": "https://zipkin.example.com:9411/api/v2/spans"}}]}
    [(_, name, cluster)] = proxy_resources(conf, [conf], ProxyFacts("default", "web-1", "web", "10.0.0.1"))
    got = as_json(cluster)
    assert name == "meshtrace:zipkin"
    assert got["type"] == "STRICT_DNS"
    assert got["transportSocket"]["typedConfig"]["sni"] == "zipkin.example.com"
    assert got["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"] == {
        "address": "zipkin.example.com",
        "portValue": 9411,
    }


def test_opentelemetry_backend_ref_selecting_nothing_configures_nothing() -> None:
    conf = {
        "backends": [{"type": "OpenTelemetry", "openTelemetry": {"backendRef": {"kind": "MeshOpenTelemetryBackend", "labels": {"a": "b"}}}}]
    }
    assert tracing(conf, mesh="default", service="web", direction="inbound", destination="", gateway=False) is None
    assert proxy_resources(conf, [conf], ProxyFacts("default", "web-1", "web", "10.0.0.1")) == []


def test_empty_backends_trace_nothing() -> None:
    assert tracing({"backends": []}, mesh="default", service="web", direction="inbound", destination="", gateway=False) is None
    assert proxy_resources({"backends": []}, [{"backends": []}], ProxyFacts("default", "web-1", "web", "10.0.0.1")) == []


def test_datadog_service_of_a_proxy_without_a_service_is_unknown() -> None:
    conf = {"backends": [{"type": "Datadog", "datadog": {"url": "http://127.0.0.1:8126", "splitService": True}}]}
    got = tracing(conf, mesh="default", service="", direction="outbound", destination="backend", gateway=False)
    assert got is not None
    assert as_json(got)["provider"]["typedConfig"]["serviceName"] == "unknown_OUTBOUND_backend"


def facts_with(*backends: OtelBackend) -> ProxyFacts:
    return ProxyFacts("default", "web-1", "web", "10.0.0.1", otel_backends=backends)


REF = {
    "backends": [
        {"type": "OpenTelemetry", "openTelemetry": {"backendRef": {"kind": "MeshOpenTelemetryBackend", "labels": {"collector": "main"}}}}
    ]
}


def test_backend_ref_without_address_sends_to_the_proxy_own_address_over_grpc() -> None:
    # Kuma: an empty address is the node's host IP; on Universal, the dataplane's address.
    facts = facts_with(
        OtelBackend("other", freeze({"collector": "other"}), freeze({"endpoint": {"address": "10.9.9.9"}})),
        OtelBackend("main", freeze({"collector": "main", "team": "x"}), freeze({})),
    )
    got = tracing(REF, mesh="default", service="web", direction="inbound", destination="", gateway=False, facts=facts)
    assert got is not None
    assert as_json(got)["provider"]["typedConfig"]["grpcService"] == {"envoyGrpc": {"clusterName": "meshtrace:opentelemetry"}}
    [(_, _, cluster)] = proxy_resources(REF, [REF], facts)
    socket = as_json(cluster)["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]
    assert socket == {"address": "10.0.0.1", "portValue": 4317}
    assert "typedExtensionProtocolOptions" in as_json(cluster)  # HTTP/2 for gRPC


def test_backend_ref_with_http_protocol_posts_to_v1_traces_under_its_path() -> None:
    spec = freeze({"protocol": "http", "endpoint": {"address": "otel.example.com", "port": 443, "path": "/otlp"}})
    facts = facts_with(OtelBackend("main", freeze({"collector": "main"}), spec))
    got = tracing(REF, mesh="default", service="web", direction="inbound", destination="", gateway=False, facts=facts)
    assert got is not None
    assert as_json(got)["provider"]["typedConfig"]["httpService"]["httpUri"] == {
        "uri": "https://otel.example.com:443/otlp/v1/traces",
        "cluster": "meshtrace:opentelemetry",
        "timeout": "10s",
    }
    [(_, _, cluster)] = proxy_resources(REF, [REF], facts)
    assert "typedExtensionProtocolOptions" not in as_json(cluster)
    assert as_json(cluster)["transportSocket"]["typedConfig"]["sni"] == "otel.example.com"


def test_zipkin_url_without_a_port_uses_the_scheme_port() -> None:
    # Kuma would send to port 0, where nothing ever arrives; a documented difference.
    for url, port in (("http://zipkin/api/v2/spans", 80), ("https://zipkin/api/v2/spans", 443)):
        conf = {"backends": [{"type": "Zipkin", "zipkin": {"url": url}}]}
        [(_, _, cluster)] = proxy_resources(conf, [conf], ProxyFacts("default", "web-1", "web", "10.0.0.1"))
        assert (
            as_json(cluster)["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]["portValue"]
            == port
        )
