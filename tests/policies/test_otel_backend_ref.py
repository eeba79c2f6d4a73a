"""How a `backendRef` picks its MeshOpenTelemetryBackend (reconciler/policies/core/otel.py), the
one resolution MeshTrace, MeshAccessLog and MeshMetric share."""

from __future__ import annotations

from typing import Any

from reconciler.policies.core.otel import resolve_backend_ref
from reconciler.policies.core.plugin import OtelBackend, ProxyFacts


def _facts(*backends: tuple[str, dict[str, str], dict[str, Any]]) -> ProxyFacts:
    return ProxyFacts(
        "default", "web-1", "web", "10.0.0.1", otel_backends=tuple(OtelBackend(n, labels, spec) for n, labels, spec in backends)
    )


def test_every_label_of_the_ref_must_match_and_the_first_by_name_wins() -> None:
    facts = _facts(
        ("a-partial", {"team": "obs"}, {"endpoint": {"address": "10.1.1.1"}}),
        ("b-first", {"team": "obs", "tier": "main"}, {"endpoint": {"address": "10.2.2.2", "port": 4000}}),
        ("c-second", {"team": "obs", "tier": "main", "extra": "x"}, {"endpoint": {"address": "10.3.3.3"}}),
    )
    resolved = resolve_backend_ref({"kind": "MeshOpenTelemetryBackend", "labels": {"team": "obs", "tier": "main"}}, facts)
    assert resolved is not None
    assert (resolved.name, resolved.host, resolved.port, resolved.protocol) == ("b-first", "10.2.2.2", 4000, "grpc")


def test_defaults_are_the_proxy_address_port_4317_and_grpc() -> None:
    resolved = resolve_backend_ref({"labels": {"c": "1"}}, _facts(("node", {"c": "1"}, {})))
    assert resolved is not None
    assert (resolved.host, resolved.port, resolved.http, resolved.https) == ("10.0.0.1", 4317, False, False)
    assert resolved.full_path("v1/logs") == "/v1/logs"


def test_otlp_http_on_443_is_https_under_the_base_path() -> None:
    spec = {"protocol": "http", "endpoint": {"address": "otlp.example.com", "port": 443, "path": "/otlp/"}}
    resolved = resolve_backend_ref({"labels": {"c": "1"}}, _facts(("saas", {"c": "1"}, spec)))
    assert resolved is not None
    assert resolved.https and resolved.full_path("v1/traces") == "/otlp/v1/traces"


def test_a_ref_selecting_nothing_or_without_labels_resolves_to_none() -> None:
    facts = _facts(("node", {"c": "1"}, {}))
    assert resolve_backend_ref({"labels": {"c": "2"}}, facts) is None
    assert resolve_backend_ref({"labels": {}}, facts) is None
    assert resolve_backend_ref({"labels": {"c": "1"}}, None) is None
