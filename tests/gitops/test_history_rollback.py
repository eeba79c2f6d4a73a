"""`reconciler history`, `rollback` and `resume`: real git, real Envoys, real traffic.

Commit A gives `web` an outbound to `backend`; commit B adds one to `other`. Traffic to
`other` through `web`'s Envoy is the workload-visible difference: it works only while B (or a
later commit) is served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.gitops.helpers import dataplane, mesh
from tests.gitops.serving import as_admin, conditions, history_outcomes, read_jsonl, ref, reflog, refused, run_cli
from tests.support import GitRepo, git

VALID_TIMEOUT = """\
type: MeshTimeout
mesh: default
name: quick
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 2s
"""
BROKEN_TIMEOUT = VALID_TIMEOUT.replace("connectionTimeout: 2s", "connectionTimeout: 0s")


@dataclass
class Served:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess]

    def files(self, to_other: bool, timeout: bool = False) -> dict[str, str | None]:
        p = self.ports
        outbounds = {"backend": p["web_to_backend"]} | ({"other": p["web_to_other"]} if to_other else {})
        return {
            "meshes/default.yaml": mesh(),
            "dataplanes/web.yaml": dataplane("web", p["web_in"], p["web_app"], p["web_admin"], outbounds),
            "dataplanes/backend.yaml": dataplane("backend-1", p["backend_in"], p["backend_app"], p["backend_admin"], service="backend"),
            "dataplanes/other.yaml": dataplane("other-1", p["other_in"], p["other_app"], p["other_admin"], service="other"),
            "policies/timeout.yaml": VALID_TIMEOUT if timeout else None,
        }

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.ports[key]}/"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("rollback")
    remote = ConfigRemote(root)
    with Workload("web") as web, Workload("backend") as backend, Workload("other") as other:
        ports = {
            k: free_port()
            for k in ("web_in", "backend_in", "other_in", "web_to_backend", "web_to_other", "web_admin", "backend_admin", "other_admin")
        }
        ports |= {"web_app": web.port, "backend_app": backend.port, "other_app": other.port}
        s = Served(remote, ControlPlaneProcess(remote.bare, root / "state"), ports, {})
        first = remote.push(s.files(to_other=False), "A: web calls backend")
        s.cp.start()
        try:
            for name in ("web", "backend-1", "other-1"):
                s.envoys[name] = EnvoyProcess(s.cp, root / "envoys", name=name, admin_port=ports[f"{name.split('-')[0]}_admin"])
                s.envoys[name].start()
            s.cp.wait_applied(first, ["default.web", "default.backend-1", "default.other-1"])
            yield s
        finally:
            for envoy in s.envoys.values():
                envoy.stop()
            s.cp.stop()


PROXIES = ["default.web", "default.backend-1", "default.other-1"]


def test_rollback_survives_a_restart_and_resume_returns_to_the_head(served: Served) -> None:
    remote, cp = served.remote, served.cp
    a = remote.push(served.files(to_other=False), "A: web calls backend")
    cp.wait_applied(a, PROXIES)
    b = remote.push(served.files(to_other=True), "B: web also calls other")
    cp.wait_applied(b, PROXIES)
    assert wait_until(lambda: http_get(served.url("web_to_other")) == (200, "other\n"), 10, what="traffic to other under B")

    # Roll back to A through the running server: it answers once every proxy ACKed A.
    code, out = run_cli("rollback", "--server", cp.api, *as_admin(cp.state_dir), a[:10])
    assert code == 0, out
    assert out.splitlines()[0] == f"applied {a[:12]}: Applied revision: main@sha1:{a}"
    assert f"proxies: 3 of 3 ACKed revision {a[:12]}" in out
    assert f"pinned: serving stays on {a[:12]} until `reconciler resume`" in out
    assert wait_until(lambda: refused(served.url("web_to_other")), 10, what="web's outbound to other gone")
    assert http_get(served.url("web_to_backend")) == (200, "backend\n")
    assert ref(remote.bare, "refs/reconciler/pin") == a
    assert ref(remote.bare, "refs/reconciler/applied") == a
    assert git(remote.bare, "log", "--format=%H", "refs/reconciler/pin").stdout.split()[0] == a

    # A new commit is validated and recorded, not applied.
    c = remote.push(served.files(to_other=True, timeout=True), "C: a timeout")
    status = cp.wait_attempted(c)
    assert status["lastAppliedRevision"] == f"main@sha1:{a}"
    assert status["pinnedRevision"] == f"main@sha1:{a}"
    cond = conditions(status)
    assert cond["Ready"]["status"] == "True"
    assert (cond["Pinned"]["status"], cond["Pinned"]["reason"]) == ("True", "RollbackPinned")
    code, out = run_cli("history", "--server", cp.api, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    outcomes = history_outcomes(doc)
    assert (outcomes[c], outcomes[b], outcomes[a]) == ("held", "rolled-back", "applied")
    assert [e["revision"] for e in doc["commits"] if e["served"]] == [a]
    assert doc["pinnedRevision"] == a

    # A restart keeps the pin: still A, still no route to other.
    cp.stop()
    cp.start()
    cp.wait_applied(a, PROXIES)
    status = cp.status()
    assert status is not None and status["pinnedRevision"] == f"main@sha1:{a}"
    assert status["lastAttemptedRevision"] == f"main@sha1:{c}"
    assert refused(served.url("web_to_other"))
    assert http_get(served.url("web_to_backend")) == (200, "backend\n")
    # The outcomes were persisted: the offline history reads them from the state directory.
    code, out = run_cli("history", "--repo", str(remote.bare), "--state-dir", str(cp.state_dir))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"branch main: head {c[:12]}, serving {a[:12]} (pinned to {a[:12]}")
    assert any(line.startswith(f"  {c[:12]}  held (pinned)") for line in lines), out
    assert any(line.startswith(f"  {b[:12]}  rolled back") for line in lines), out
    assert any(line.startswith(f"* {a[:12]}  applied, served, pinned") for line in lines), out
    assert f"serving moved back to main@sha1:{a} by refs/reconciler/pin" in out

    # Refused while pinned: an unknown revision, a commit off the branch, an invalid commit.
    code, out = run_cli("rollback", "--server", cp.api, *as_admin(cp.state_dir), "0123456789abcdef")
    assert code == 2 and "revision '0123456789abcdef' not found" in out
    git(remote.work, "checkout", "-q", "--detach", a)
    (remote.work / "policies").mkdir(exist_ok=True)
    (remote.work / "policies" / "timeout.yaml").write_text(BROKEN_TIMEOUT)
    git(remote.work, "add", "-A")
    git(remote.work, "commit", "-q", "-m", "off main, invalid")
    off = git(remote.work, "rev-parse", "HEAD").stdout.strip()
    git(remote.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
    git(remote.work, "checkout", "-q", "main")
    code, out = run_cli("rollback", "--server", cp.api, *as_admin(cp.state_dir), off)
    assert code == 1, out
    assert (
        out.splitlines()[0]
        == f"refused {off[:12]}: {off[:12]} is not on the history of main: refusing to pin it (rollback --force pins it anyway)"
    )
    code, out = run_cli("rollback", "--server", cp.api, *as_admin(cp.state_dir), "--force", off)
    assert code == 1, out
    assert out.splitlines()[0].startswith(f"refused {off[:12]}: refusing to pin {off[:12]}: validation failed: 1 error")
    assert (
        "policies/timeout.yaml:11: MeshTimeout default/quick /spec/to/0/default/connectionTimeout: must be greater than zero when defined"
        in out
    )
    assert ref(remote.bare, "refs/reconciler/pin") == a

    code, out = run_cli("resume", "--server", cp.api, *as_admin(cp.state_dir))
    assert code == 0, out
    assert out.splitlines()[0] == f"applied {c[:12]}: Applied revision: main@sha1:{c}"
    assert "proxies: 3 of 3 ACKed" in out
    assert wait_until(lambda: http_get(served.url("web_to_other")) == (200, "other\n"), 10, what="traffic to other after resume")
    status = cp.status()
    assert status is not None and status["pinnedRevision"] == "" and "Pinned" not in conditions(status)
    assert ref(remote.bare, "refs/reconciler/pin") is None
    # The audit trail: each change of what is served is in the reflog of refs/reconciler/applied.
    trail = [line.split(" ", 1) for line in reflog(remote.bare, "refs/reconciler/applied")]
    assert [sha for sha, _ in trail[:3]] == [c, a, b]
    assert trail[1][1] == f"reconciler: applied {a[:12]} (pinned by refs/reconciler/pin, rollback)"
    rolled = [r for r in read_jsonl(cp.state_dir / "history.jsonl") if r["outcome"] == "rolled-back"]
    assert [(r["revision"], r["to"], r["trigger"]) for r in rolled] == [(b, a, "rollback")]


# -- without a server --------------------------------------------------------------------------
def test_offline_rollback_writes_the_pin_and_resume_deletes_it(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    a = repo.commit({"meshes/default.yaml": mesh()}, "A")
    b = repo.commit({"meshes/other.yaml": mesh("other")}, "B")
    where = ["--repo", str(repo.path), "--state-dir", str(tmp_path / "state")]
    code, out = run_cli("rollback", *where, "HEAD~1")
    assert code == 0, out
    assert out.splitlines() == [
        f"pinned main to {a[:12]} (refs/reconciler/pin): valid: 1 resource (revision {a[:12]})",
        "a server reading this repository applies it at its next check; `reconciler resume` follows main again",
    ]
    assert ref(repo.path, "refs/reconciler/pin") == a
    assert reflog(repo.path, "refs/reconciler/pin") == [f"{a} reconciler rollback: pin {a[:12]} (serving nothing, cli)"]
    code, out = run_cli("history", *where, "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["head"], doc["pinnedRevision"], doc["servedRevision"]) == (b, a, "")
    assert history_outcomes(doc) == {b: "pending", a: "pending"}
    assert "no attempts recorded" in doc["note"]
    code, out = run_cli("resume", *where)
    assert (code, out) == (0, f"unpinned {a[:12]}: a server reading this repository follows the branch again at its next check\n")
    assert ref(repo.path, "refs/reconciler/pin") is None
    assert run_cli("resume", *where) == (0, "not pinned: serving already follows the branch\n")


def test_offline_rollback_refuses_unknown_invalid_and_foreign_revisions(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh()}, "A")
    bad = repo.commit({"policies/timeout.yaml": BROKEN_TIMEOUT}, "broken")
    repo.commit({"policies/timeout.yaml": None}, "fixed")
    git(repo.path, "checkout", "-q", "-b", "feature", "HEAD~2")
    foreign = repo.commit({"meshes/feature.yaml": mesh("feature")}, "feature")
    git(repo.path, "checkout", "-q", "main")
    where = ["--repo", str(repo.path), "--state-dir", str(tmp_path / "state")]
    code, out = run_cli("rollback", *where, "nope")
    assert code == 2 and "revision 'nope' not found" in out
    code, out = run_cli("rollback", *where, bad)
    assert code == 1
    assert out.splitlines() == [
        "Error: policies/timeout.yaml:11: MeshTimeout default/quick /spec/to/0/default/connectionTimeout: must be greater than zero when defined",
        f"invalid: 1 error in 1 file (revision {bad[:12]}, 2 resources)",
        f"refusing to pin {bad[:12]}: it does not validate",
    ]
    code, out = run_cli("rollback", *where, foreign)
    assert (code, out) == (1, f"Error: {foreign[:12]} is not on the history of main: refusing to pin it (--force pins it anyway)\n")
    assert ref(repo.path, "refs/reconciler/pin") is None
    code, out = run_cli("rollback", *where, "--force", foreign)
    assert code == 0 and ref(repo.path, "refs/reconciler/pin") == foreign


def test_rollback_with_both_server_and_repo_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run_cli("rollback", "--repo", str(tmp_path), "--server", "http://127.0.0.1:9", "HEAD")
    assert code == 2 and "not both" in out
    code, out = run_cli("resume", "--server", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the control plane" in out
