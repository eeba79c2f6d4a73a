"""Every read endpoint of the API answers with its JSON (or Prometheus text), as before the move
to aiohttp, and a name that does not exist is a 404 with a message."""

from __future__ import annotations

from pathlib import Path

from tests.api.support import request, served_control_plane
from tests.e2e.harness import free_port
from tests.gitops.helpers import dataplane, mesh


def test_read_endpoints_answer_with_their_documents(tmp_path: Path) -> None:
    files = {"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", free_port(), free_port(), free_port())}
    with served_control_plane(tmp_path, files) as (_, cp, first):
        cp.wait_applied(first)
        api = cp.api
        status = request(api, "GET", "/status").json()
        assert status["lastAppliedRevision"] == f"main@sha1:{first}" and status["resources"] == 2

        dataplanes = request(api, "GET", "/status/dataplanes").json()
        assert [(d["node"], d["source"], d["connected"]) for d in dataplanes] == [("default.web", "git", False)]
        assert request(api, "GET", "/dataplanes/default/web").json()["node"] == "default.web"
        missing = request(api, "GET", "/dataplanes/default/nope")
        assert (missing.status, missing.json()) == (404, {"error": "no dataplane default.nope"})

        config = request(api, "GET", "/config/default/web").json()
        assert config["node"] == "default.web" and config["revision"] == first and config["resources"]["LDS"]
        assert request(api, "GET", "/config/default/nope").status == 404

        metrics = request(api, "GET", "/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'reconciler_reconciles_total{outcome="applied"} 1' in metrics.body.decode()

        history = request(api, "GET", "/history?limit=1").json()
        assert [c["revision"] for c in history["commits"]] == [first]
        assert request(api, "GET", "/history?limit=many").status == 400


def test_commit_diff_shows_what_a_commit_changed_against_its_parent(tmp_path: Path) -> None:
    files = {"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", free_port(), free_port(), free_port())}
    with served_control_plane(tmp_path, files) as (remote, cp, first):
        cp.wait_applied(first)
        second = remote.push({"dataplanes/web.yaml": None, "meshes/other.yaml": mesh("other")}, "swap web for a mesh")
        cp.wait_applied(second)
        doc = request(cp.api, "GET", f"/history/{second}/diff").json()
        assert (doc["revision"], doc["parent"], doc["subject"]) == (second, first, "swap web for a mesh")
        assert [(r["type"], r["name"], r["file"]) for r in doc["added"]] == [("Mesh", "other", "meshes/other.yaml")]
        assert [(r["type"], r["mesh"], r["name"]) for r in doc["removed"]] == [("Dataplane", "default", "web")]
        root = request(cp.api, "GET", f"/history/{first[:12]}/diff").json()
        assert root["parent"] is None and len(root["added"]) == 2
        assert request(cp.api, "GET", f"/history/{'0' * 40}/diff").status == 404
        assert request(cp.api, "GET", "/history/a..b/diff").status == 400
