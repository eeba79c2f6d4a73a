"""`POST /rollback` takes a commit id or a ref name (with `~N`/`^N`), at most 256 characters;
anything else is a 400 with a message, before any git or regex work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.api.revision import MAX_REVISION, revision_problem
from tests.api.support import admin_token, request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess
from tests.gitops.helpers import mesh

ACCEPTED = [
    "main",
    "HEAD",
    "main~1",
    "HEAD~3",
    "main^",
    "main^2~1",
    "main~~",
    "abcd",
    "a1b2c3d",
    "0123456789abcdef0123456789abcdef01234567",
    "f" * 64,
    "refs/heads/main",
    "v1.2.3",
    "feature/x-y_z",
    "release-2024.01",
    "origin/main",
    "ü-branch",
]
REFUSED = {
    "": "empty",
    "x" * (MAX_REVISION + 1): f"at most {MAX_REVISION}",
    "main..other": "'..'",
    "-main": "starts with '-'",
    "a b": "space",
    "main:file.yaml": "':'",
    "a\x00b": "control character",
    "a\x7fb": "control character",
    "main@{1}": "'@{'",
    "@": "'@'",
    "branch.lock": ".lock",
    "/main": "'/'",
    "main/": "'/'",
    "a//b": "'//'",
    ".hidden": "'.'",
    "refs/.x": "'.'",
    "main.": "'.'",
    "a*b": "'*'",
    "a?b": "'?'",
    "a[b": "'['",
    "a\\b": "'\\'",
    "main~x": "~N or ^N",
    "~1": "empty",
    "main^{tree}": "~N or ^N",
}


@pytest.mark.parametrize("revision", ACCEPTED)
def test_commit_ids_and_ref_names_are_accepted(revision: str) -> None:
    assert revision_problem(revision) is None


@pytest.mark.parametrize("revision", list(REFUSED), ids=[repr(r[:20]) for r in REFUSED])
def test_other_revisions_are_refused_with_the_reason(revision: str) -> None:
    problem = revision_problem(revision)
    assert problem is not None and REFUSED[revision] in problem, problem
    assert len(problem) < 400  # a long revision is not echoed back whole


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlaneProcess, str, str]]:
    root = tmp_path_factory.mktemp("revisions")
    with served_control_plane(root, {"meshes/default.yaml": mesh()}) as (remote, cp, first):
        second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
        cp.wait_applied(second)
        yield cp, first, second


@pytest.mark.parametrize("size", [300, 100 * 1024])
def test_an_oversized_revision_is_a_400_and_nothing_is_pinned(served: tuple[ControlPlaneProcess, str, str], size: int) -> None:
    cp, _, second = served
    reply = request(cp.api, "POST", "/rollback", {"revision": "a" * size}, token=admin_token(cp.state_dir), timeout=15)
    assert reply.status == 400, reply
    assert f"at most {MAX_REVISION}" in reply.json()["error"]
    status = cp.status()
    assert status is not None and status["pinnedRevision"] == "" and status["lastAppliedRevision"].endswith(second)


def test_refused_revision_shapes_are_400s_from_the_server(served: tuple[ControlPlaneProcess, str, str]) -> None:
    cp, _, _ = served
    token = admin_token(cp.state_dir)
    for body in (
        {"revision": "main..x"},
        {"revision": "a\nb"},
        {"revision": 1234},
        {"revision": ["main"]},
        {"nothing": 1},
        {"revision": "main", "force": "yes"},
    ):
        reply = request(cp.api, "POST", "/rollback", body, token=token)
        assert reply.status == 400 and reply.json()["error"], (body, reply)


def test_ancestry_forms_and_short_ids_still_pin(served: tuple[ControlPlaneProcess, str, str]) -> None:
    cp, first, second = served
    token = admin_token(cp.state_dir)
    try:
        for revision in ("main~1", "main^", first[:7], first):
            reply = request(cp.api, "POST", "/rollback", {"revision": revision}, token=token)
            assert reply.status == 200 and reply.json()["pinnedRevision"].endswith(first), (revision, reply)
        reply = request(cp.api, "POST", "/rollback", {"revision": "no-such-branch"}, token=token)
        assert reply.status == 400 and "not found" in reply.json()["error"]
    finally:
        assert request(cp.api, "POST", "/resume", token=token).status == 200
