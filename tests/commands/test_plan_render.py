"""`reconciler plan`'s three renderings (text, JSON, Markdown) of representative plans, against
golden files in tests/commands/golden/.

The plans are built by hand (a PlanResult is plain data), so each golden shows one renderer's
answer to one situation a reviewer meets: an invalid HEAD, nothing to do, a change with every
kind of proxy and reachability delta and an Envoy rejection, a HEAD that cannot be served, and
a Markdown comment cut to fit. After an intended change of the output,
`UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest tests/commands` rewrites the files; review
their diff like code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.commands.envoy_check import EnvoyVerdict
from reconciler.commands.plan_render import MARKDOWN_MARKER, plan_json, plan_markdown, plan_text
from reconciler.commands.plan_result import PairChange, PlanResult, ProxyPlan, ReachChange, ResourceDelta
from reconciler.commands.reachability import InboundKey
from reconciler.diff import FieldChange, diff
from reconciler.errors import Problem
from reconciler.model import Resource
from reconciler.source.loader import load_file
from reconciler.validate.pipeline import Report

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN_FILES") == "true"

BASE = "1111111111111111111111111111111111111111"
HEAD = "2222222222222222222222222222222222222222"

MESH = "type: Mesh\nname: default\n"
WEB = """type: Dataplane
mesh: default
name: web
networking:
  address: 10.0.0.1
  inbound:
    - port: 8080
      tags:
        kuma.io/service: web
"""
TIMEOUT = """type: MeshTimeout
mesh: default
name: web-timeout
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: {timeout}
"""


def _resources(files: dict[str, str]) -> tuple[Resource, ...]:
    out: list[Resource] = []
    for path, text in files.items():
        result = load_file(path, text.encode())
        assert not result.problems, result.problems
        out += result.resources
    return tuple(out)


def _invalid_head() -> PlanResult:
    problem = Problem("web.yaml", 7, None, "/networking/inbound/0/port", "must be between 1 and 65535")
    return PlanResult(BASE, HEAD, Report(HEAD, 2, (problem,)))


def _no_changes() -> PlanResult:
    same = _resources({"mesh.yaml": MESH, "web.yaml": WEB})
    return PlanResult(BASE, HEAD, Report(HEAD, 2, ()), diff(same, same), envoy_checked=True, allowed_before=1, allowed_after=1)


def _changes() -> PlanResult:
    before = _resources({"mesh.yaml": MESH, "web.yaml": WEB, "timeout.yaml": TIMEOUT.format(timeout="5s")})
    after = _resources({"mesh.yaml": MESH, "timeout.yaml": TIMEOUT.format(timeout="10s"), "api.yaml": WEB.replace("web", "api")})
    warning = Problem("timeout.yaml", 1, None, "/spec", "connectionTimeout over 5s delays failover", severity="warning")
    cluster_old = {"name": "api", "connectTimeout": "5s", "type": "EDS"}
    cluster_new = {"name": "api", "connectTimeout": "10s", "type": "EDS"}
    changed = ProxyPlan(
        "default.web",
        "changed",
        (
            ResourceDelta("CDS", "api", "changed", cluster_old, cluster_new, (FieldChange("/connectTimeout", "replace", "5s", "10s"),)),
            ResourceDelta("LDS", "outbound:10.0.0.2:80", "added", None, {"name": "outbound:10.0.0.2:80", "address": "10.0.0.2"}),
            ResourceDelta("SDS", "mesh_ca", "changed", {"name": "mesh_ca"}, {"name": "mesh_ca"}, (), True),
        ),
        (ReachChange(InboundKey("default.web", "10.0.0.1", 8080, "web"), ("legacy",), ("api",)),),
        EnvoyVerdict("default.web", False, "Proto constraint validation failed: connect_timeout: value must be greater than 0s"),
    )
    added = ProxyPlan(
        "default.api",
        "added",
        (ResourceDelta("LDS", "inbound:10.0.0.1:8080", "added", None, {"name": "inbound:10.0.0.1:8080"}),),
        envoy=EnvoyVerdict("default.api", True),
        shape="compact outbound shape (12 outbounds ≥ --compact-outbounds 10)",
    )
    removed = ProxyPlan("default.old", "removed", (ResourceDelta("LDS", "inbound:10.0.0.9:80", "removed", {"name": "x"}, None),))
    return PlanResult(
        BASE,
        HEAD,
        Report(HEAD, 3, (warning,)),
        diff(before, after),
        (added, removed, changed),
        lost=(PairChange("default", "legacy", "web"),),
        gained=(PairChange("default", "api", "web"),),
        allowed_before=2,
        allowed_after=2,
        envoy_checked=True,
        notes=("MeshProxyPatch default/patch names listener outbound:10.0.0.2:80, which compact proxy default.api does not have",),
    )


def _cannot_serve() -> PlanResult:
    same = _resources({"mesh.yaml": MESH})
    return PlanResult(
        None,
        HEAD,
        Report(HEAD, 1, ()),
        diff((), same),
        base_invalid=True,
        errors=("cannot issue certificates: mesh default: the provided CA certificate cannot be read",),
    )


PLANS: dict[str, Callable[[], PlanResult]] = {
    "invalid-head": _invalid_head,
    "no-changes": _no_changes,
    "changes": _changes,
    "cannot-serve": _cannot_serve,
}
RENDERERS: dict[str, Callable[[PlanResult], str]] = {"txt": plan_text, "json": plan_json, "md": plan_markdown}


def _check(name: str, rendered: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered + "\n", encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; create it with UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest tests/commands"
    assert rendered + "\n" == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden file; if the new output is right: UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest tests/commands"
    )


@pytest.mark.parametrize("suffix", sorted(RENDERERS))
@pytest.mark.parametrize("plan", sorted(PLANS))
def test_plan_renders_as_its_golden_file(plan: str, suffix: str) -> None:
    _check(f"{plan}.{suffix}", RENDERERS[suffix](PLANS[plan]()))


def test_markdown_too_long_for_a_comment_lists_the_proxies_without_their_diffs() -> None:
    full = plan_markdown(_changes())
    rendered = plan_markdown(_changes(), limit=len(full) - 1)
    assert rendered.startswith(MARKDOWN_MARKER) and len(rendered) < len(full)
    assert "Per-proxy diffs left out" in rendered
    _check("changes.limited.md", rendered)


def test_every_golden_file_belongs_to_a_case() -> None:
    expected = {f"{p}.{s}" for p in PLANS for s in RENDERERS} | {"changes.limited.md"}
    assert {p.name for p in GOLDEN.iterdir()} == expected
