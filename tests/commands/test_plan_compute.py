"""`plan_snapshots`, the pure half of `reconciler plan`: two snapshots and the settings → a
PlanResult, with no repository and no Envoy (the real Envoy's verdicts are tested in
tests/gitops/test_plan.py)."""

from __future__ import annotations

import pytest

from reconciler.commands.plan_compute import PlanSettings, plan_snapshots
from reconciler.commands.plan_result import PairChange, PlanResult
from reconciler.model import Snapshot
from reconciler.validate import validate
from tests.gitops.helpers import ALLOW_ALL, dataplane, deny_from, mesh
from tests.support import snapshot_of_text

WEB = dataplane("web", 18080, 19000, 19901, {"backend": 20001})
BACKEND = dataplane("backend", 18090, 19001, 19902)
BASE = [mesh(mtls=True), ALLOW_ALL, WEB, BACKEND]


def _snapshot(*documents: str, revision: str) -> Snapshot:
    snapshot = snapshot_of_text("---\n".join(documents))
    return Snapshot(revision, snapshot.resources, snapshot.problems, snapshot.files)


def _plan(base: list[str], head: list[str], settings: PlanSettings = PlanSettings(), *, base_invalid: bool = False) -> PlanResult:  # noqa: B008
    a, b = _snapshot(*base, revision="a" * 40), _snapshot(*head, revision="b" * 40)
    report = validate(b)
    assert report.valid, [p.render() for p in report.errors]
    return plan_snapshots(a, b, report, settings, base_invalid=base_invalid)


@pytest.mark.parametrize(
    ("head", "proxies", "lost", "gained"),
    [
        pytest.param(BASE, {}, [], [], id="same configuration"),
        pytest.param(
            [*BASE, deny_from("web", "backend")],
            {"default.backend": "changed"},
            [PairChange("default", "web", "backend")],
            [],
            id="a deny policy",
        ),
        pytest.param(
            [*BASE, dataplane("orders", 18100, 19002, 19903)],
            # the others' Envoy config is the same: only who may call their inbounds changes
            {"default.backend": "changed", "default.orders": "added", "default.web": "changed"},
            [],
            [
                PairChange("default", s, d)
                for s, d in [("backend", "orders"), ("orders", "backend"), ("orders", "orders"), ("orders", "web"), ("web", "orders")]
            ],
            id="a new dataplane",
        ),
        pytest.param(
            [mesh(mtls=True), ALLOW_ALL, WEB],
            {"default.backend": "removed", "default.web": "changed"},
            [PairChange("default", s, d) for s, d in [("backend", "backend"), ("backend", "web"), ("web", "backend")]],
            [],
            id="a dataplane leaves",
        ),
    ],
)
def test_plan_lists_the_proxies_and_service_pairs_a_change_affects(
    head: list[str], proxies: dict[str, str], lost: list[PairChange], gained: list[PairChange]
) -> None:
    plan = _plan(BASE, head)
    assert {p.node_id: p.status for p in plan.proxies} == proxies
    assert (list(plan.lost), list(plan.gained)) == (lost, gained)
    assert plan.valid and not plan.envoy_checked


def test_a_denied_client_shows_on_the_inbound_it_can_no_longer_reach() -> None:
    plan = _plan(BASE, [*BASE, deny_from("web", "backend")])
    (backend,) = plan.proxies
    (reach,) = backend.reach
    assert (reach.inbound.node_id, reach.inbound.port, reach.lost, reach.gained) == ("default.backend", 18090, ("web",), ())
    assert [(d.type, d.name, d.op) for d in backend.resources] == [("LDS", "inbound:127.0.0.1:18090", "changed")]


def test_an_invalid_base_is_compared_as_an_empty_configuration() -> None:
    plan = _plan(BASE, BASE, base_invalid=True)
    assert plan.base_invalid
    assert {p.node_id: p.status for p in plan.proxies} == {"default.backend": "added", "default.web": "added"}
    assert plan.diff is not None and len(plan.diff.added) == len(BASE)


def test_plan_names_a_proxy_patch_modification_that_cannot_apply() -> None:
    # The server skips such a modification and applies the others; plan is where the author hears of it.
    bad_patch = """type: MeshProxyPatch
mesh: default
name: bad-patch
spec:
  targetRef: {kind: Dataplane, name: web}
  default:
    appendModifications:
      - cluster:
          operation: Patch
          jsonPatches:
            - {op: replace, path: /lbPolicy/x, value: 1}
"""
    result = _plan(BASE, [*BASE, bad_patch])
    notes = [n for n in result.notes if "MeshProxyPatch" in n]
    assert len(notes) == 1 and notes[0].startswith("default.web: MeshProxyPatch: modification 0 (cluster Patch) skipped"), result.notes
    assert _plan(BASE, BASE).notes == ()
