"""deploy/grafana/control-plane.json queries only metrics the control plane exports: every metric
name its PromQL names (tests/promql.py states the rule) is in a live scrape of a real
`reconciler serve`, with the sample names each family exports (`_total`, `_bucket`, ...).

The mesh dashboard (Envoy's metrics through MeshMetric) is checked in tests/test_mesh_dashboard.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.telemetry import Scrape, scrape
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess
from tests.promql import dashboard_queries, metric_names

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "control-plane.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    root = tmp_path_factory.mktemp("dashboards")
    remote = ConfigRemote(root)
    first = remote.push({"meshes/default.yaml": "type: Mesh\nname: default\n"}, "mesh")
    cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False, xds_tls=False)
    cp.start()
    try:
        cp.wait_applied(first)
        yield scrape(cp.api)
    finally:
        cp.stop()


def test_the_name_rule_reads_selectors_ranges_and_bare_names_not_functions_labels_or_strings() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, phase) (rate(reconciler_reconcile_phase_duration_seconds_bucket{phase=~"a|b_c"}[$__rate_interval])))'
        " / on (phase) group_left process_open_fds + ignoring(x) up[5m] + label_values(reconciler_mesh_connected_proxies, mesh) + ${DS}"
    )
    assert metric_names(expr) == {
        "reconciler_reconcile_phase_duration_seconds_bucket",
        "process_open_fds",
        "up",
        "reconciler_mesh_connected_proxies",
    }


def test_every_control_plane_panel_queries_exported_metrics(exported: Scrape) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = exported.names()
    queried: dict[str, set[str]] = {}
    for where, expr in dashboard_queries(dashboard):
        found = metric_names(expr)
        assert found, f"{where}: no metric name read from {expr!r}"
        for name in found:
            queried.setdefault(name, set()).add(where)
    missing = {name: sorted(where) for name, where in queried.items() if name not in names}
    assert not missing, f"queried but not exported: {missing}"
    # The dashboard covers what the issue asks for.
    for wanted in (
        "reconciler_reconciles_total",
        "reconciler_reconcile_phase_duration_seconds_bucket",
        "reconciler_xds_push_ack_seconds_bucket",
        "reconciler_mesh_connected_proxies",
        "reconciler_xds_nacks_total",
        "reconciler_proxy_nacks_total",
        "reconciler_condition",
    ):
        assert wanted in queried, wanted


def test_the_mesh_variable_has_values_before_any_proxy_connects(exported: Scrape) -> None:
    # `label_values(reconciler_mesh_connected_proxies, mesh)`: the applied commit's meshes, at 0.
    assert exported.matching("reconciler_mesh_connected_proxies") == {frozenset({("mesh", "default")}): 0}
    assert exported.value("reconciler_connected_proxies") == 0


def test_a_misspelt_metric_would_be_caught(exported: Scrape) -> None:
    names = exported.names()
    assert "reconciler_reconciles_total" in names and "reconciler_reconcile_total" not in names
    assert metric_names("sum(rate(reconciler_reconcile_total[5m]))") - names == {"reconciler_reconcile_total"}


ALERTS = DASHBOARD.parent.parent / "prometheus" / "alerts.yml"


def test_every_alert_rule_queries_exported_metrics(exported: Scrape) -> None:
    import yaml

    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {"ReconcilerNotReady", "ReconcilerCommitRejected", "ReconcilerReplicasDisagree"}
    names = exported.names()
    for rule in rules:
        found = metric_names(rule["expr"])
        assert found and found <= names, f"{rule['alert']}: {sorted(found - names)} not exported"
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
