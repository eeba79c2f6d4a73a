"""One replica's view of some repositories: every resource version of every proxy.

`python -m tests.replicas.probe NOW STATE_DIR KEYS_DIR REPO...` prints, as JSON, what `versions`
returns for each repository, computed in a process of its own (its own string hashing, its own
CA objects read from STATE_DIR/<repo name>, or KEYS_DIR/<repo name> unless KEYS_DIR is `-`), as
another control-plane replica would.
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


def versions(repo: Path, state_dir: Path, now: float, keys_dir: Path | None = None) -> Versions:
    """Build HEAD of `repo` as `reconciler serve` does at `now`, its state in `state_dir` and,
    with `keys_dir` (`serve --keys-dir`), its builtin CAs read from there."""
    store = CaStore(state_dir / repo.name, keys_dir / repo.name if keys_dir is not None else None)
    engine = Engine(GitSource(str(repo)), CertificateProvider(store, clock=lambda: now))
    evaluation = engine.evaluate("HEAD")
    if not evaluation.report.valid:
        raise AssertionError(f"{repo.name} is not valid: " + "; ".join(p.render() for p in evaluation.report.errors))
    build = engine.build(evaluation.snapshot, ())
    return {node: {f"{r.type_url} {r.name}": r.version for r in resources} for node, resources in build.changed.items()}


def main(argv: list[str]) -> None:
    now, state_dir, repos = float(argv[0]), Path(argv[1]), [Path(a) for a in argv[3:]]
    keys_dir = Path(argv[2]) if argv[2] != "-" else None
    json.dump({repo.name: versions(repo, state_dir, now, keys_dir) for repo in repos}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
