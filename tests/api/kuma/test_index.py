"""`GET /` says what answers (Kuma's Index: our product, the Kuma version it follows) and
`GET /_resources` describes every kind served, read-only, at Kuma's paths."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from reconciler import __version__
from reconciler.kinds import all_kinds
from tests.api.support import request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    root = tmp_path_factory.mktemp("kuma-index")
    with served_control_plane(root, {"mesh.yaml": "type: Mesh\nname: default\n"}, extra=("--dataplane-auth", "none")) as (_, cp, sha):
        cp.wait_applied(sha)
        yield cp


def test_index_says_what_answers(cp: ControlPlaneProcess) -> None:
    index = request(cp.api, "GET", "/").json()
    assert index["product"] == "mesh-reconciler"
    assert index["basedOnKuma"] == "2.14.3"
    assert index["version"] == __version__
    assert index["hostname"] == socket.gethostname()
    assert index["gui"] == "/gui"
    assert index["instanceId"] and index["clusterId"]
    assert request(cp.api, "GET", "/").json()["clusterId"] == index["clusterId"]
    head = request(cp.api, "HEAD", "/")
    assert head.status == 200 and head.body == b""


def test_resources_describe_every_kind_read_only(cp: ControlPlaneProcess) -> None:
    resources = request(cp.api, "GET", "/_resources").json()["resources"]
    assert [r["name"] for r in resources] == sorted(all_kinds())
    by_name = {r["name"]: r for r in resources}
    assert all(r["readOnly"] for r in resources)
    assert by_name["MeshTLS"]["path"] == "meshtlses" and by_name["MeshTLS"]["pluralDisplayName"] == "Mesh TLSes"
    assert by_name["Mesh"]["scope"] == "Global" and by_name["Dataplane"]["scope"] == "Mesh"
    assert by_name["Dataplane"]["includeInFederation"] is False and by_name["MeshTimeout"]["includeInFederation"] is True
    assert by_name["MeshTrafficPermission"]["policy"] == {
        "isTargetRef": True,
        "hasToTargetRef": False,
        "hasFromTargetRef": True,
        "hasRulesTargetRef": True,
        "isFromAsRules": False,
    }
    assert "policy" not in by_name["MeshService"]
    assert by_name["Secret"]["shortName"] == ""
    # Every path it names answers a list.
    for r in resources:
        path = f"/{r['path']}" if r["scope"] == "Global" else f"/meshes/default/{r['path']}"
        assert request(cp.api, "GET", path).json()["next"] is None, path


def test_policies_lists_the_policy_kinds(cp: ControlPlaneProcess) -> None:
    policies = {p["name"]: p for p in request(cp.api, "GET", "/policies").json()["policies"]}
    assert set(policies) == {k.name for k in all_kinds().values() if k.policy}
    assert policies["MeshTimeout"]["path"] == "meshtimeouts"
    assert (policies["MeshTrafficPermission"]["isInbound"], policies["MeshTrafficPermission"]["isOutbound"]) == (True, False)
    assert all(p["readOnly"] and p["isTargetRefBased"] for p in policies.values())
