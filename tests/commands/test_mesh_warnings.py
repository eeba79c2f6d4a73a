"""Issue 12 item 13: dead policies. `validate`, `plan` (and the hook, tests/gitops/test_hook_warnings.py)
warn at a policy's targetRef when it selects no proxy or when every field it sets is overridden
by a policy applied after it — and the warning is true: `plan` shows the same policy changing
Envoy config once renamed so that it wins the tie."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.commands.plan import run_plan
from tests.gitops.helpers import ALLOW_ALL, dataplane, mesh
from tests.support import GitRepo


def timeout(name: str, http: str = "requestTimeout: 3s") -> str:
    return f"""\
type: MeshTimeout
name: {name}
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 2s
        http:
          {http}
"""


NOBODY = """\
type: MeshRetry
name: frontend-retries
mesh: default
spec:
  targetRef:
    kind: Dataplane
    labels:
      app: frontend
  to:
    - targetRef:
        kind: Mesh
      default:
        tcp:
          maxConnectAttempt: 3
"""

WORLD: dict[str, str | bytes | None] = {
    "mesh.yaml": mesh(),
    "allow.yaml": ALLOW_ALL,
    "web.yaml": dataplane("web", 18080, 19000, 19901, {"backend": 20001}),
    "backend.yaml": dataplane("backend", 18090, 19001, 19902),
}


def _repo(tmp_path: Path) -> tuple[GitRepo, str]:
    repo = GitRepo(tmp_path / "config")
    return repo, repo.commit(WORLD, "mesh")


def _validate(repo: GitRepo) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo.path)])
    return result.exit_code, [line for line in result.output.splitlines() if "dead policy" in line]


def test_a_mesh_wide_timeout_named_t_loses_every_field_to_kumas_default(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    head = repo.commit({"timeout.yaml": timeout("t")}, "a global timeout")
    code, lines = _validate(repo)
    assert code == 0  # a warning, not an error: Kuma accepts it
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("timeout.yaml:5: warning: MeshTimeout default/t /spec/targetRef: dead policy: every field it sets is overridden")
    assert "by MeshTimeout mesh-timeout-all-default (Kuma's default), applied after it" in line
    assert "on a tie Kuma applies the smaller name last" in line
    assert "skipCreatingInitialPolicies: [MeshTimeout]" in line
    # plan says why "0 proxies affected": the same warning is in the plan.
    plan = run_plan(str(repo.path), None, base, head, envoy_check=False)
    assert plan.proxies == ()
    assert any("dead policy" in w.message and w.resource is not None and w.resource.name == "t" for w in plan.report.warnings)
    # The warning is true: renamed below "mesh-timeout-all-default", the same policy wins the tie
    # and changes the cluster of the one proxy with an outbound.
    renamed = repo.commit({"timeout.yaml": timeout("a-global")}, "renamed")
    assert _validate(repo) == (0, [])
    plan = run_plan(str(repo.path), None, head, renamed, envoy_check=False)
    assert {p.node_id for p in plan.proxies} == {"default.web"}
    changed = [d for p in plan.proxies for d in p.resources if d.type == "CDS"]
    assert any(f.new == "2s" for d in changed for f in d.fields), changed


def test_a_policy_that_sets_one_field_the_default_does_not_is_alive(tmp_path: Path) -> None:
    repo, _ = _repo(tmp_path)
    repo.commit({"timeout.yaml": timeout("t", "maxStreamDuration: 30s")})
    assert _validate(repo) == (0, [])


def test_a_policy_that_selects_no_proxy_says_so(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    head = repo.commit({"retry.yaml": NOBODY})
    code, lines = _validate(repo)
    assert code == 0
    assert lines == [
        "retry.yaml:5: warning: MeshRetry default/frontend-retries /spec/targetRef: dead policy: its targetRef "
        "(Dataplane labels {'app': 'frontend'}) selects none of the 2 Dataplanes of mesh \"default\" in this revision, "
        "so it changes nothing; fix the targetRef or remove the policy"
    ]
    assert run_plan(str(repo.path), None, base, head, envoy_check=False).proxies == ()
    # Once a proxy has the label, it is selected and the warning goes.
    repo.commit({"web.yaml": str(WORLD["web.yaml"]).replace("app: web", "app: frontend")})
    assert _validate(repo) == (0, [])


def test_no_dead_policy_verdict_without_dataplanes_in_git(tmp_path: Path) -> None:
    """Proxies may register themselves at runtime: with none in git nothing is judged."""
    repo = GitRepo(tmp_path / "config")
    repo.commit({"mesh.yaml": mesh(), "retry.yaml": NOBODY, "timeout.yaml": timeout("t")})
    assert _validate(repo) == (0, [])


def _dead(text: str) -> dict[str, str]:
    """Policy name → the dead-policy warning for it, for the documents in `text` plus WORLD."""
    from reconciler.views.dead_policies import dead_policy_problems
    from tests.support import snapshot_of_text

    world = "---\n".join(str(WORLD[f]) for f in ("mesh.yaml", "web.yaml", "backend.yaml"))
    snapshot = snapshot_of_text(world + "---\n" + text)
    return {str(p.resource.name): p.message for p in dead_policy_problems(snapshot.resources) if p.resource is not None}


def test_an_inbound_timeout_loses_to_the_default_as_an_outbound_one_does() -> None:
    inbound = timeout("t").replace("  to:\n", "  from:\n")
    assert set(_dead(inbound)) == {"t"}
    alive = inbound.replace("requestTimeout: 3s", "requestHeadersTimeout: 1s")  # the sidecar default does not set it
    assert _dead(alive) == {}


def test_a_committed_policy_that_wins_the_tie_is_named() -> None:
    b = timeout("b", "maxStreamDuration: 30s").replace("        connectionTimeout: 2s\n", "")
    a = b.replace("name: b", "name: a").replace("30s", "40s")
    found = _dead(b + "---\n" + a)
    assert set(found) == {"b"}
    assert "overridden on the 2 proxies it selects by MeshTimeout a, applied after it" in found["b"]
    assert 'a ties with it on the targetRef and on a tie Kuma applies the smaller name last, so "a" wins over "b"' in found["b"]
    assert "skipCreatingInitialPolicies" not in found["b"]
    # A more specific targetRef is applied after the mesh-wide one whatever the names: no tie.
    specific = a.replace("    kind: Mesh\n  to:", "    kind: Dataplane\n    labels:\n      app: web\n  to:", 1)
    found = _dead(b + "---\n" + specific)
    assert set(found) == {"b"}  # web is the only proxy with an outbound, and "a" wins there
    assert "by MeshTimeout a, applied after it; give it a more specific targetRef" in found["b"]
    assert "ties" not in found["b"]
