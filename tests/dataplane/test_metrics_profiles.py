"""MeshMetric's `sidecar.profiles` on Envoy's families: Kuma's own cases (kuma-dp
app/kuma-dp/pkg/dataplane/metrics/profiles_test.go and testdata/profiles), written here as
inputs and the families Kuma keeps."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.dataplane.metrics.exposition import parse, render
from reconciler.dataplane.metrics.profiles import profile_filter

ENVOY = """\
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="user_rq_time_svc"} 5
envoy_cluster_upstream_rq_total{envoy_cluster_name="bytes_consumer"} 3
envoy_cluster_upstream_rq_total{envoy_cluster_name="ads_cluster"} 7
envoy_cluster_upstream_rq_total{envoy_cluster_name="normal_svc"} 2
# TYPE envoy_cluster_assignment_timeout_received counter
envoy_cluster_assignment_timeout_received{envoy_cluster_name="ads_cluster"} 1
# TYPE envoy_http_downstream_cx_active gauge
envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix="system_envoy_admin"} 23
envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix="inbound_10_0_0_1_80"} 4
# TYPE envoy_listener_sock_downstream_pre_cx_active gauge
envoy_listener_sock_downstream_pre_cx_active{envoy_listener_address="system_meshmetric_foo_bar_baz"} 233
# TYPE envoy_some_irrelevant_metric counter
envoy_some_irrelevant_metric{envoy_cluster_name="example"} 1
# TYPE envoy_cluster_upstream_cx_active gauge
envoy_cluster_upstream_cx_active{envoy_cluster_name="example"} 1
# TYPE envoy_cluster_default_total_match_count counter
envoy_cluster_default_total_match_count{envoy_cluster_name="example"} 1
# TYPE envoy_cluster_lb_healthy_panic counter
envoy_cluster_lb_healthy_panic{envoy_cluster_name="example"} 1
# TYPE envoy_rbac_allowed counter
envoy_rbac_allowed{envoy_cluster_name="example"} 1
# TYPE envoy_dns_cares_resolve_total counter
envoy_dns_cares_resolve_total{} 1
# TYPE envoy_server_live gauge
envoy_server_live 1
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="example",le="1"} 1
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="example",le="+Inf"} 2
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="example"} 3.5
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="example"} 2
"""

EVERY = {f.name for f in parse(ENVOY)}
BASIC = {
    "envoy_cluster_upstream_rq_total",
    "envoy_http_downstream_cx_active",
    "envoy_cluster_upstream_cx_active",
    "envoy_cluster_lb_healthy_panic",
    "envoy_rbac_allowed",
    "envoy_dns_cares_resolve_total",
    "envoy_server_live",
    "envoy_cluster_upstream_rq_time",
}
"""What Basic keeps of ENVOY. Not envoy_cluster_assignment_timeout_received nor
envoy_listener_sock_downstream_pre_cx_active: their names match Basic selectors ("timeout",
"cx_active") but their only samples are internal entities', so the families go."""


def kept(sidecar: dict[str, Any] | None) -> set[str]:
    return {f.name for f in profile_filter(sidecar)(parse(ENVOY))}


def profiles(*names: str, **sections: Any) -> dict[str, Any]:
    return {"profiles": {"appendProfiles": [{"name": n} for n in names], **sections}}


@pytest.mark.parametrize(
    ("case", "sidecar", "expected"),
    [
        ("all: nothing is filtered", profiles("All"), EVERY),
        ("all_merged: Basic, All and None together is All", profiles("Basic", "All", "None"), EVERY),
        ("none: nothing", profiles("None"), set()),
        ("basic: golden signals and dashboards, internal entities dropped", profiles("Basic"), BASIC),
        ("no sidecar section: Basic", None, BASIC),
        ("no appendProfiles: Basic", {"profiles": {}}, BASIC),
        ("basic_and_none: Basic", profiles("None", "Basic"), BASIC),
        (
            "include: None plus a Regex include",
            profiles("None", include=[{"type": "Regex", "match": "envoy_rbac.*"}]),
            {"envoy_rbac_allowed"},
        ),
        (
            "exclude: All minus a Regex exclude",
            profiles("All", exclude=[{"type": "Regex", "match": "envoy_rbac.*"}]),
            EVERY - {"envoy_rbac_allowed"},
        ),
        (
            "mixed: Basic, an exclude, and an Exact include that wins over it",
            profiles(
                "Basic",
                exclude=[{"type": "Regex", "match": "envoy_cluster_.*"}],
                include=[{"type": "Exact", "match": "envoy_cluster_default_total_match_count"}],
            ),
            {n for n in BASIC if not n.startswith("envoy_cluster_")} | {"envoy_cluster_default_total_match_count"},
        ),
        (
            "Prefix and Contains selectors",
            profiles("None", include=[{"type": "Prefix", "match": "envoy_server"}, {"type": "Contains", "match": "lb_healthy"}]),
            {"envoy_server_live", "envoy_cluster_lb_healthy_panic"},
        ),
        (
            "an unanchored Regex matches anywhere in the name",
            profiles("None", include=[{"type": "Regex", "match": "rq_t"}]),
            {
                "envoy_cluster_upstream_rq_total",
                "envoy_cluster_upstream_rq_time",
            },
        ),
    ],
)
def test_profiles_keep_the_families_kuma_keeps(case: str, sidecar: dict[str, Any] | None, expected: set[str]) -> None:
    assert kept(sidecar) == expected, case


def test_basic_drops_samples_of_internal_entities_but_keeps_user_names_that_contain_basic_words() -> None:
    # Kuma's basic_user_labels: a user's cluster named like a Basic selector stays; ads_cluster goes.
    family = next(f for f in profile_filter(profiles("Basic"))(parse(ENVOY)) if f.name == "envoy_cluster_upstream_rq_total")
    assert [s.labels["envoy_cluster_name"] for s in family.samples] == ["user_rq_time_svc", "bytes_consumer", "normal_svc"]
    downstream = next(f for f in profile_filter(None)(parse(ENVOY)) if f.name == "envoy_http_downstream_cx_active")
    assert [s.labels for s in downstream.samples] == [{"envoy_http_conn_manager_prefix": "inbound_10_0_0_1_80"}]


def test_all_keeps_internal_samples() -> None:
    family = next(f for f in profile_filter(profiles("All"))(parse(ENVOY)) if f.name == "envoy_cluster_upstream_rq_total")
    assert len(family.samples) == 4


def test_the_filtered_text_is_kumas_golden_for_the_mixed_case() -> None:
    text = render(profile_filter(profiles("Basic", exclude=[{"type": "Regex", "match": "envoy_cluster_lb_.*"}]))(parse(ENVOY)))
    assert "envoy_cluster_lb_healthy_panic" not in text
    assert 'envoy_cluster_upstream_cx_active{envoy_cluster_name="example"} 1\n' in text
