"""A rollback through the API writes the pin, then reconciles; the watch loop may see the pin
in between and apply it first. Whichever applies it, the audit trail says it was the rollback."""

from __future__ import annotations

from pathlib import Path

from tests.gitops.serving import read_jsonl, reflog
from tests.security.support import LocalControlPlane
from tests.support import GitRepo, git, mesh


def test_a_pin_the_watch_loop_applies_first_is_recorded_as_the_rollback(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    a = repo.commit({"mesh.yaml": mesh()}, "A")
    b = repo.commit({"other.yaml": mesh("other")}, "B")
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    try:
        cp.wait_applied(b)
        # The rollback's first steps; its own reconcile has not run yet when the watch loop
        # (polling every 0.2 s here) finds the pin.
        cp.cp.reconciler.pinning = a
        git(repo.path, "update-ref", "refs/reconciler/pin", a)
        cp.wait_applied(a)
        assert (
            reflog(repo.path, "refs/reconciler/applied")[0] == f"{a} reconciler: applied {a[:12]} (pinned by refs/reconciler/pin, rollback)"
        )
        records = read_jsonl(tmp_path / "state" / "history.jsonl")
        assert [(r["outcome"], r["trigger"]) for r in records if r["revision"] == a][-1] == ("applied", "rollback")
        assert [(r["outcome"], r["trigger"]) for r in records if r["revision"] == b][-1] == ("rolled-back", "rollback")
    finally:
        cp.stop()
