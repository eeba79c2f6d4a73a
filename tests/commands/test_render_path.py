"""The one render path (reconciler.render): what the server publishes for a commit is what
`plan`, `reconcile --out` and `inspect` show for it, and the server regenerates only the
proxies whose inputs changed.

Certificates come from a different throwaway CA in each command: they are compared as people
read them, redacted (a secret shows its name only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.commands.inspect import inspect_dataplane
from reconciler.commands.plan import run_plan
from reconciler.commands.reconcile_out import render_out
from reconciler.reconcile import Build, Engine
from reconciler.source.git import GitSource
from reconciler.xds.resources import SHORT_NAMES, ProxyResources, redact
from reconciler.xds.static import static_bootstrap_for
from tests.gitops.helpers import ALLOW_ALL, dataplane, deny_from, mesh
from tests.support import GitRepo

FILES: dict[str, str | bytes | None] = {
    "meshes/default.yaml": mesh(mtls=True),
    "policies/allow-all.yaml": ALLOW_ALL,
    "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901, {"backend": 20001, "orders": 20002}),
    "dataplanes/backend.yaml": dataplane("backend", 18090, 19001, 19902),
    "dataplanes/orders.yaml": dataplane("orders", 18100, 19002, 19903, {"backend": 20003}),
}
NODES = ["default.backend", "default.orders", "default.web"]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"README.md": "configuration of the mesh\n"}, "empty")
    repo.commit(FILES, "mesh")
    return repo


def _served(repo: GitRepo, rev: str = "HEAD") -> tuple[Engine, Build]:
    engine = Engine(GitSource(str(repo.path)))
    evaluation = engine.evaluate(rev)
    assert evaluation.report.valid
    return engine, engine.build(evaluation.snapshot, ())


def _public(resources: ProxyResources) -> dict[tuple[str, str], Any]:
    """(xDS type, name) → the resource as people see it (key material redacted)."""
    return {(SHORT_NAMES[r.type_url], r.name): r.public_dict() for r in resources}


def _grouped(resources: ProxyResources) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        out.setdefault(SHORT_NAMES[r.type_url], []).append(r.public_dict())
    return out


def test_plan_shows_every_proxy_with_the_config_the_server_publishes(repo: GitRepo) -> None:
    _, build = _served(repo)
    plan = run_plan(str(repo.path), "", "HEAD~1", "HEAD", envoy_check=False)
    assert [p.node_id for p in plan.proxies] == NODES
    for proxy in plan.proxies:
        assert proxy.status == "added"
        shown = {(d.type, d.name): d.new for d in proxy.resources}
        assert shown == _public(build.changed[proxy.node_id]), proxy.node_id


def test_inspect_shows_the_config_the_server_publishes(repo: GitRepo) -> None:
    _, build = _served(repo)
    for node in NODES:
        doc = inspect_dataplane(str(repo.path), "", None, False, "default", node.removeprefix("default."), config=True)
        assert doc["envoy"] == _grouped(build.changed[node]), node


def test_reconcile_out_writes_the_listeners_and_clusters_the_server_publishes(repo: GitRepo, tmp_path: Path) -> None:
    _, build = _served(repo)
    result = render_out(str(repo.path), "", None, tmp_path / "out")
    assert sorted(f.node_id for f in result.files) == NODES
    for f in result.files:
        written = yaml.safe_load(f.path.read_text(encoding="utf-8"))["staticResources"]
        expected = static_bootstrap_for(build.views[f.node_id], build.changed[f.node_id])["staticResources"]
        for kind in ("listeners", "clusters"):
            assert redact(written[kind]) == redact(expected[kind]), (f.node_id, kind)
        assert sorted(s["name"] for s in written.get("secrets", [])) == sorted(s["name"] for s in expected.get("secrets", []))


def test_the_server_regenerates_only_the_proxies_whose_inputs_changed(repo: GitRepo) -> None:
    engine, first = _served(repo)
    assert sorted(first.changed) == NODES
    engine.commit(first)

    again = engine.build(engine.evaluate("HEAD").snapshot, ())
    assert again.changed == {} and again.removed == frozenset()

    repo.commit({"policies/deny-web-orders.yaml": deny_from("web", "orders")}, "web may no longer call orders")
    engine.commit(again)
    after = engine.build(engine.evaluate("HEAD").snapshot, ())
    assert sorted(after.changed) == ["default.orders"]
    assert sorted(after.views) == NODES

    repo.commit({"dataplanes/backend.yaml": None}, "backend leaves")
    engine.commit(after)
    gone = engine.build(engine.evaluate("HEAD").snapshot, ())
    assert gone.removed == frozenset({"default.backend"})
    assert "default.backend" not in gone.changed
