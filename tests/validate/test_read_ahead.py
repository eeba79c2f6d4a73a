"""A commit with many unread files is parsed and validated in worker processes too, and the
user sees exactly what a read in one process shows: the same resources, the same problems at
the same file:line, the same refusal when the commit runs out of its budget."""

from __future__ import annotations

from reconciler.reconcile import Engine, Evaluation
from reconciler.source.git import GitSource
from reconciler.validate.pipeline import ResourceValidator
from reconciler.validate.read_ahead import read_ahead
from tests.support import GitRepo, dataplane_yaml

FILES = 80


def _files() -> dict[str, str]:
    files = {"mesh.yaml": "type: Mesh\nname: default\n"}
    for i in range(FILES):
        files[f"dataplanes/dp-{i:03}.yaml"] = dataplane_yaml(f"dp-{i}", f"svc-{i % 7}", 8000 + i, 9000 + i, {"svc-0": 20000})
    # What a user can get wrong, among many good files.
    files["dataplanes/dp-010.yaml"] = files["dataplanes/dp-010.yaml"].replace("servicePort: 9010", "servicePort: 99999")
    files["dataplanes/dp-020.yaml"] = "type: Dataplane\nname: dp-20\n  mesh: [oops\n"
    files["dataplanes/dp-030.yaml"] = "type: MeshTimeuot\nname: t\nmesh: default\nspec: {}\n"
    files["dataplanes/dp-040.yaml"] += "---\n" + dataplane_yaml("dp-40b", "svc-1", 8500, 8400).replace("port: 8500", "port: -1")
    files["dataplanes/dp-050.yaml"] = files["dataplanes/dp-050.yaml"].replace(
        "kuma.io/service: svc-1", "kuma.io/service: svc-1\n        kuma.io/service: again"
    )
    return files


def _evaluate(path: str, parallel_from: int, **source_options: int) -> Evaluation:
    return Engine(GitSource(path, **source_options), parallel_from=parallel_from).evaluate("HEAD")


def _seen(evaluation: Evaluation) -> tuple[object, ...]:
    resources = [(r.key, r.digest, r.origin.file if r.origin else None, r.origin.line if r.origin else None) for r in evaluation.snapshot]
    return (resources, [p.location() + " " + p.message for p in evaluation.report.problems], evaluation.snapshot.files)


def test_workers_find_the_same_resources_and_problems_at_the_same_lines(repo: GitRepo) -> None:
    repo.commit(_files())
    alone = _evaluate(str(repo.path), parallel_from=10**9)
    shared = _evaluate(str(repo.path), parallel_from=10)
    assert _seen(shared) == _seen(alone)
    located = {p.location() for p in alone.report.errors}
    assert {"dataplanes/dp-010.yaml:8", "dataplanes/dp-020.yaml:3", "dataplanes/dp-030.yaml:1"} <= located, located
    assert any(p.file == "dataplanes/dp-040.yaml" and p.line and p.line > 14 for p in alone.report.errors)
    assert any("duplicate key" in p.message and p.file == "dataplanes/dp-050.yaml" for p in alone.report.errors)
    assert len(alone.snapshot.resources) == 1 + FILES - 3 + 1  # the mesh; three files hold none; dp-040 holds two


def test_the_workers_did_parse_and_validate(repo: GitRepo) -> None:
    repo.commit(_files())
    source = GitSource(str(repo.path))
    validator = ResourceValidator()
    commit = source.resolve("HEAD")
    ahead = read_ahead(source, source.unread_blobs(commit), validator, least=10, workers=1)
    assert len(ahead) == FILES + 1
    assert validator.computed >= FILES - 3
    # The read with them finds what a read without them finds.
    assert source.snapshot_of(commit, ahead).resources == GitSource(str(repo.path)).snapshot("HEAD").resources


def test_a_commit_over_its_budget_is_refused_at_the_same_file_and_line(repo: GitRepo) -> None:
    repo.commit(_files())
    alone = _evaluate(str(repo.path), parallel_from=10**9, max_commit_nodes=1_000)
    shared = _evaluate(str(repo.path), parallel_from=10, max_commit_nodes=1_000)
    assert not alone.report.valid
    assert [p.location() for p in alone.report.errors] == [p.location() for p in shared.report.errors]
    assert alone.report.errors == shared.report.errors
    assert "in all" in alone.report.errors[0].message


def test_a_small_commit_stays_in_this_process(repo: GitRepo) -> None:
    repo.commit(_files())
    source = GitSource(str(repo.path))
    assert read_ahead(source, source.unread_blobs(source.resolve("HEAD")), ResourceValidator(), least=FILES + 2) == {}
