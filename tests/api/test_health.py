"""`/healthz`: the process is up. `/readyz`: a commit is applied and xDS is being served; else 503
with the reason, so an orchestrator sends no proxy to a replica with nothing to serve."""

from __future__ import annotations

from pathlib import Path

from tests.api.support import request
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, wait_until
from tests.gitops.helpers import mesh

BROKEN = "type: MeshTimeout\nmesh: default\nname: t\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        connectionTimeout: 0s\n"


def test_ready_only_once_a_commit_is_applied_and_while_one_is(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    invalid = remote.push({"meshes/default.yaml": mesh(), "policies/t.yaml": BROKEN}, "invalid from the start")
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state")
    cp.start()
    try:
        health = request(cp.api, "GET", "/healthz")
        assert (health.status, health.json()) == (200, {"status": "ok"})
        cp.wait_attempted(invalid)
        ready = request(cp.api, "GET", "/readyz")
        assert ready.status == 503, ready
        doc = ready.json()
        assert doc["ready"] is False
        assert any("no commit applied" in r and "validation failed" in r for r in doc["reasons"]), doc
        assert request(cp.api, "HEAD", "/readyz").status == 503

        good = remote.push({"policies/t.yaml": None}, "fixed")
        cp.wait_applied(good)
        ready = request(cp.api, "GET", "/readyz")
        assert ready.status == 200 and ready.json() == {"ready": True, "revision": f"main@sha1:{good}", "reasons": []}, ready

        # A rejected commit later leaves the last good one served: still ready.
        bad = remote.push({"policies/t.yaml": BROKEN}, "broken again")
        cp.wait_attempted(bad)
        assert request(cp.api, "GET", "/readyz").json()["revision"] == f"main@sha1:{good}"
        assert wait_until(lambda: request(cp.api, "GET", "/readyz").status == 200, 5)
    finally:
        cp.stop()
