"""Drive files through the real pipeline and check its promises.

Two ways in, both without sockets:
- `run_files`: the pure stages on files in memory: load_file → validate → build_mesh_model →
  proxy_views → generate, as `reconcile --out` does.
- `CommitRunner`: a real bare git repository (pygit2, in a temporary directory) and the
  serve loop's `Engine`: each case is a commit on `main`, read with the blob cache, validated
  with the memoizing validator and built incrementally after the previous valid commit.

The promises (what the fuzz tests assert): nothing raises; validation reports no internal
error; and whatever validates also builds and generates. The one rejection a valid commit
may still get at build time is CaError, by design: CA material only the serving host can load
(files, environment variables, the PEM inside a Secret) and MeshIdentity providers other than
Bundled, which Kuma accepts and this control plane cannot issue with (docs/security.md).
`serve` records it as an `mTLS: <message>` rejection; here it must at least be one line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pygit2

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.mesh.model import build_mesh_model
from reconciler.model import Snapshot
from reconciler.reconcile import Engine
from reconciler.source.git import GitSource
from reconciler.source.loader import is_config_file, load_file
from reconciler.validate import Report, ResourceValidator, validate
from reconciler.validate.bugs import is_internal_error
from reconciler.views.dead_policies import dead_policy_problems
from reconciler.views.proxy import proxy_views
from tests.support import generate_checked

__all__ = ["run_files", "CommitRunner", "check_report", "check_ca_error"]


def check_report(report: Report, what: str) -> None:
    bugs = [p.render() for p in report.problems if is_internal_error(p)]
    assert not bugs, f"validation hit a bug ({what}):\n" + "\n".join(bugs)


def run_files(files: Mapping[str, bytes], certs: CertificateProvider, validator: ResourceValidator, what: str) -> Report:
    """load → validate → (when valid) build → generate every proxy's config."""
    results = [load_file(path, data) for path, data in sorted(files.items()) if is_config_file(path)]
    snapshot = Snapshot(None, tuple(r for f in results for r in f.resources), tuple(p for f in results for p in f.problems), len(results))
    report = validate(snapshot, validator)
    check_report(report, what)
    if report.valid:
        dead_policy_problems(snapshot.resources)  # what validate/plan/the hook add must not raise either
        try:
            views = proxy_views(build_mesh_model(snapshot.resources, ()), certs)
        except CaError as e:
            check_ca_error(e)
            return report
        for view in views.values():
            generate_checked(view)
    return report


def check_ca_error(error: CaError) -> None:
    message = str(error)
    assert message and "\n" not in message, f"CaError without a one-line message: {message!r}"


class CommitRunner:
    """Each case becomes a commit of a real repository, reconciled by the serve loop's Engine."""

    def __init__(self, directory: Path, certs: CertificateProvider) -> None:
        self.repo = pygit2.init_repository(str(directory), bare=True)
        self.engine = Engine(GitSource(self.repo), certs)
        self.parent: list[pygit2.Oid] = []
        self.signature = pygit2.Signature("Fuzz", "fuzz@example.com", int(time.time()), 0)

    def _tree(self, files: Mapping[str, bytes]) -> pygit2.Oid:
        root: dict[str, object] = {}
        for path, data in files.items():
            *dirs, name = path.split("/")
            node = root
            for d in dirs:
                node = node.setdefault(d, {})  # type: ignore[assignment]
            node[name] = data
        return self._write(root)

    def _write(self, node: Mapping[str, object]) -> pygit2.Oid:
        builder = self.repo.TreeBuilder()
        for name, value in sorted(node.items()):
            if isinstance(value, Mapping):
                builder.insert(name, self._write(value), pygit2.GIT_FILEMODE_TREE)
            else:
                assert isinstance(value, bytes)
                builder.insert(name, self.repo.create_blob(value), pygit2.GIT_FILEMODE_BLOB)
        return builder.write()

    def commit(self, files: Mapping[str, bytes], message: str) -> str:
        oid = self.repo.create_commit("refs/heads/main", self.signature, self.signature, message or "fuzz", self._tree(files), self.parent)
        self.parent = [oid]
        return str(oid)

    def run(self, files: Mapping[str, bytes], what: str) -> Report:
        """Commit, evaluate and (when valid) build; a valid build is kept, as serve keeps it."""
        sha = self.commit(files, what)
        evaluation = self.engine.evaluate(sha)
        check_report(evaluation.report, what)
        if evaluation.report.valid:
            try:
                self.engine.commit(self.engine.build(evaluation.snapshot, ()))
            except CaError as e:
                check_ca_error(e)
        return evaluation.report
