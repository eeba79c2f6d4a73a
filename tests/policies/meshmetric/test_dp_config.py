"""The `/meshmetric` document MeshMetric hands the sidecar (Kuma's MeshMetricDpConfig), byte
for byte as Kuma's control plane writes it: the ETag Envoy answers with is its SHA-256, so the
same document must hash the same."""

from __future__ import annotations

import json

import pytest

from reconciler.policies.core.plugin import ProxyFacts
from reconciler.policies.meshmetric.dynconf import etag, go_duration, go_json
from reconciler.policies.meshmetric.envoy import dp_config, otel_backend_name, proxy_resources
from reconciler.xds_types import CLUSTER, LISTENER

WEB = ProxyFacts("default", "web-1", "web", "10.0.0.1")

# Kuma v2.14.3 pkg/plugins/policies/meshmetric/plugin/v1alpha1/testdata/default.listeners.golden.yaml:
# the inline body and its Etag header.
KUMA_DEFAULT_BODY = (
    '{"observability":{"metrics":{"applications":[{"name":"test-app","path":"/metrics","port":8080,"address":""}],'
    '"backends":[{"type":"Prometheus","name":null}],"extraLabels":{"dataplane":"dp-1","kuma.proxy_role":"sidecar",'
    '"kuma.workload":"backend","kuma_io_service":"backend","kuma_io_services":",backend,","mesh":"default","zone":"zone-1"}}}}'
)
KUMA_DEFAULT_ETAG = "c737069abe59b6c80a8e47562ccc9fc8f73d9380f505efd2d8900161f0b51ee4"


def test_go_json_writes_kumas_bytes_and_the_etag_is_kumas() -> None:
    document = json.loads(KUMA_DEFAULT_BODY)
    assert go_json(document) == KUMA_DEFAULT_BODY
    assert etag(go_json(document)) == KUMA_DEFAULT_ETAG


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "1m0s"), (10, "10s"), (3600, "1h0m0s"), (5400.5, "1h30m0.5s"), (0.5, "500ms"), (0, "0s"), (90, "1m30s")],
)
def test_refresh_interval_is_printed_as_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_the_document_lists_applications_backends_sidecar_and_labels_in_kumas_order() -> None:
    conf = {
        "sidecar": {"includeUnused": True, "profiles": {"include": [{"type": "Exact", "match": "x"}], "appendProfiles": [{"name": "All"}]}},
        "applications": [{"port": 9000}, {"name": "app", "port": 9001, "path": "/m", "address": "10.0.0.9"}],
        "backends": [
            {"type": "OpenTelemetry", "openTelemetry": {"endpoint": "collector:4317", "refreshInterval": "10s"}},
            {"type": "Prometheus", "prometheus": {"port": 5670}},
            {"type": "Prometheus", "prometheus": {"port": 5671, "clientId": "b"}},
            {"type": "OpenTelemetry", "openTelemetry": {"backendRef": {"kind": "MeshOpenTelemetryBackend", "labels": {"a": "b"}}}},
        ],
    }
    body = go_json(dp_config(conf, WEB))
    assert body == (
        '{"observability":{"metrics":{"applications":[{"path":"/metrics","port":9000,"address":""},'
        '{"name":"app","path":"/m","port":9001,"address":"10.0.0.9"}],'
        '"backends":[{"type":"Prometheus","name":null},'
        '{"type":"OpenTelemetry","name":"collector-4317","openTelemetry":{"endpoint":"kuma-otel-collector-4317.sock","refreshInterval":"10s"}}],'
        '"sidecar":{"profiles":{"appendProfiles":[{"name":"All"}],"include":[{"type":"Exact","match":"x"}]},"includeUnused":true},'
        '"extraLabels":{"dataplane":"web-1","kuma.proxy_role":"sidecar","kuma_io_service":"web","kuma_io_services":",web,",'
        '"mesh":"default","service":"web"}}}}'
    )


def test_no_applications_is_null_and_the_default_refresh_is_a_minute() -> None:
    conf = {"backends": [{"type": "OpenTelemetry", "openTelemetry": {"endpoint": "otel.svc:4317"}}]}
    metrics = dp_config(conf, ProxyFacts("m", "edge-1", "edge", "10.0.0.2", gateway=True))["observability"]["metrics"]
    assert metrics["applications"] is None
    assert metrics["backends"][0]["openTelemetry"] == {"endpoint": "kuma-otel-otel.svc-4317.sock", "refreshInterval": "1m0s"}
    assert metrics["extraLabels"]["kuma.proxy_role"] == "gateway"


def test_backend_names_are_kumas() -> None:
    assert otel_backend_name("otel-collector.observability.svc:4317") == "otel-collector.observability.svc-4317"
    assert otel_backend_name("a/b:1") == "ab-1"  # "/" removed first, then ":" → "-"


def test_each_prometheus_client_id_gets_a_listener_sharing_one_hijacker_cluster() -> None:
    conf = {
        "backends": [
            {"type": "Prometheus", "prometheus": {"port": 5670}},
            {"type": "Prometheus", "prometheus": {"port": 5671, "clientId": "b"}},
            {"type": "Prometheus", "prometheus": {"port": 5672, "clientId": "b"}},
        ]
    }
    names = [(t, n) for t, n, _ in proxy_resources(conf, [conf], WEB)]
    assert names == [
        (CLUSTER, "_kuma:metrics:hijacker"),
        (LISTENER, "_kuma:metrics:prometheus:default-backend"),
        (LISTENER, "_kuma:metrics:prometheus:b"),
        (LISTENER, "_kuma:dynamicconfig"),
    ]


def test_no_backend_no_resources() -> None:
    assert list(proxy_resources({"applications": [{"port": 1}]}, [], WEB)) == []
    assert list(proxy_resources(None, [{"backends": [{"type": "Prometheus", "prometheus": {}}]}], WEB)) == []
