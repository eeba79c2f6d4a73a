"""What `GET /metrics` prints, from `Metrics` and a real `Store`: one registry per control plane,
label values from fixed sets, the per-proxy NACK series bounded, counts printed as integers."""

from __future__ import annotations

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from reconciler.api.metrics import MAX_NACK_PROXIES, Metrics, type_label
from reconciler.store import Store
from reconciler.xds_types import LISTENER

LDS = LISTENER


def samples(m: Metrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    body, _ = m.exposition()
    return {
        frozenset(s.labels.items()): s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples if s.name == name
    }


def test_each_control_plane_has_its_own_registry_not_the_global_one() -> None:
    one, two = Metrics(Store("main")), Metrics(Store("main"))
    one.reconciles.labels(outcome="applied").inc(3)
    assert one.value("reconciler_reconciles_total", outcome="applied") == 3
    assert two.value("reconciler_reconciles_total", outcome="applied") == 0
    assert prometheus_client.REGISTRY.get_sample_value("reconciler_reconciles_total", {"outcome": "applied"}) is None


def test_counts_print_as_integers_and_seconds_as_they_are() -> None:
    m = Metrics(Store("main"))
    m.reconciles.labels(outcome="applied").inc()
    m.push_ack_latency.observe(0.25)
    text = m.exposition()[0].decode()
    assert 'reconciler_reconciles_total{outcome="applied"} 1\n' in text
    assert 'reconciler_reconciles_total{outcome="rejected"} 0\n' in text
    assert 'reconciler_xds_push_ack_seconds_bucket{le="0.25"} 1\n' in text
    assert 'reconciler_xds_push_ack_seconds_bucket{le="0.1"} 0\n' in text
    assert "reconciler_xds_push_ack_seconds_count 1\n" in text
    assert "reconciler_xds_push_ack_seconds_sum 0.25\n" in text
    assert "_created" not in text


def test_a_type_url_outside_envoys_five_is_one_label_value() -> None:
    assert type_label(LDS) == "LDS"
    assert type_label("type.googleapis.com/anything.a.proxy.asks.for") == type_label("x") == "other"


def test_nacks_per_proxy_are_listed_for_connected_proxies_only_and_at_most_the_cap() -> None:
    store = Store("main")
    m = Metrics(store)
    extra = 5
    for i in range(MAX_NACK_PROXIES + extra):
        p = store.proxy(f"default.p{i:04d}")
        p.connected = True
        p.type(LDS).nacks = 2
    gone = store.proxy("default.gone")
    gone.type(LDS).nacks = 7  # disconnected: counted in reconciler_xds_nacks_total only
    quiet = store.proxy("default.quiet")
    quiet.connected = True
    quiet.type(LDS).pushes = 3  # no NACK: no series
    series = samples(m, "reconciler_proxy_nacks_total")
    proxies = {dict(labels)["proxy"] for labels in series}
    assert len(proxies) == MAX_NACK_PROXIES + 1
    assert "gone" not in proxies and "quiet" not in proxies
    assert series[frozenset({("mesh", "default"), ("proxy", "p0000"), ("type", "LDS")})] == 2
    assert series[frozenset({("mesh", ""), ("proxy", "(other)"), ("type", "LDS")})] == 2 * extra


def test_connected_proxies_are_counted_per_mesh() -> None:
    store = Store("main")
    m = Metrics(store)
    for node, connected in (("default.a", True), ("default.b", True), ("other.c", True), ("other.d", False)):
        store.proxy(node).connected = connected
    per_mesh = samples(m, "reconciler_mesh_connected_proxies")
    assert per_mesh == {frozenset({("mesh", "default")}): 2, frozenset({("mesh", "other")}): 1}
    assert samples(m, "reconciler_connected_proxies") == {frozenset(): 3}


def test_conditions_are_one_hot_per_type() -> None:
    store = Store("main")
    m = Metrics(store)
    store.pin = "a" * 40
    text = m.exposition()[0].decode()
    assert 'reconciler_condition{status="True",type="Pinned"} 1\n' in text
    assert 'reconciler_condition{status="False",type="Pinned"} 0\n' in text
    on = {dict(labels)["type"]: dict(labels)["status"] for labels, v in samples(m, "reconciler_condition").items() if v == 1}
    assert on == {"Ready": "Unknown", "Stalled": "False", "Pinned": "True", "Held": "False"}
