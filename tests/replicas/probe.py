"""One replica's view of some repositories: every resource version of every proxy.

`python -m tests.replicas.probe NOW STATE_DIR REPO...` prints, as JSON, what `versions` returns
for each repository, computed in a process of its own (its own string hashing, its own CA
objects read from STATE_DIR/<repo name>), as another control-plane replica would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reconciler.ca.provider import CertificateProvider
from reconciler.ca.store import CaStore
from reconciler.reconcile import Engine
from reconciler.source.git import GitSource

Versions = dict[str, dict[str, str]]
"""node id → "<type url> <resource name>" → version."""


def versions(repo: Path, state_dir: Path, now: float) -> Versions:
    """Build HEAD of `repo` as `reconciler serve` does, the CA state kept in `state_dir`, at `now`."""
    engine = Engine(GitSource(str(repo)), CertificateProvider(CaStore(state_dir / repo.name), clock=lambda: now))
    evaluation = engine.evaluate("HEAD")
    if not evaluation.report.valid:
        raise AssertionError(f"{repo.name} is not valid: " + "; ".join(p.render() for p in evaluation.report.errors))
    build = engine.build(evaluation.snapshot, ())
    return {node: {f"{r.type_url} {r.name}": r.version for r in resources} for node, resources in build.changed.items()}


def main(argv: list[str]) -> None:
    now, state_dir, repos = float(argv[0]), Path(argv[1]), [Path(a) for a in argv[2:]]
    json.dump({repo.name: versions(repo, state_dir, now) for repo in repos}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
