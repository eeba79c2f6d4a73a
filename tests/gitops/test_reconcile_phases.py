"""`GET /status` shows what the last reconcile spent in each phase and how many proxies it changed."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess
from tests.gitops.helpers import dataplane, mesh

PHASES = {"load", "validate", "build", "generate", "push"}


def test_last_attempt_has_every_phase_and_counts_only_the_proxies_a_commit_changes(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    web = dataplane("web", 18080, 8080, 19901, outbounds={"db": 20001})
    db = dataplane("db", 18081, 8081, 19902)
    first = remote.push({"mesh.yaml": mesh(), "web.yaml": web, "db.yaml": db}, "first")
    cp = ControlPlaneProcess(str(remote.bare), tmp_path / "state", extra=["--poll-interval", "0.2"])
    cp.start()
    try:
        status = cp.wait_applied(first)
        attempt = status["lastAttempt"]
        assert attempt["outcome"] == "applied" and attempt["revision"] == f"main@sha1:{first}"
        assert set(attempt["phaseSeconds"]) == PHASES
        assert all(seconds >= 0 for seconds in attempt["phaseSeconds"].values())
        assert attempt["proxiesChanged"] == 2

        # web's own admin port is nothing db sees: only web is regenerated.
        second = remote.push({"web.yaml": web.replace("19901", "19911")}, "web's admin port")
        attempt = cp.wait_applied(second)["lastAttempt"]
        assert set(attempt["phaseSeconds"]) == PHASES and attempt["proxiesChanged"] == 1

        # A commit that changes no resource changes no proxy.
        third = remote.push({"README.md": "notes\n"}, "notes")
        attempt = cp.wait_applied(third)["lastAttempt"]
        assert attempt["proxiesChanged"] == 0
    finally:
        cp.stop()
