"""The serve side's repository (reconciler.source.mirror): a real local repository and a real
bare clone of it reached by a file:// URL, read and written as `reconciler serve` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.source.git import SourceError
from reconciler.source.mirror import Mirror
from reconciler.source.refs import APPLIED_REF, PIN_REF
from tests.support import GitRepo, git


def test_local_repository_refs_and_reflog(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    first = repo.commit({"a.yaml": "type: Mesh\nname: default\n"})
    second = repo.commit({"b.yaml": "type: Mesh\nname: other\n"})
    mirror = Mirror(str(repo.path), "main", str(tmp_path / "state"))
    assert not mirror.remote
    mirror.open()
    assert (mirror.head(), mirror.pin(), mirror.applied()) == (second, None, None)

    mirror.write_ref(APPLIED_REF, second, "reconciler: applied it")
    mirror.write_ref(PIN_REF, first, "reconciler rollback: pin it")
    assert (mirror.applied(), mirror.pin()) == (second, first)
    reflog = git(repo.path, "log", "-g", "--format=%gs", PIN_REF).stdout.splitlines()
    assert reflog == ["reconciler rollback: pin it"]
    assert git(repo.path, "rev-parse", APPLIED_REF).stdout.strip() == second

    assert mirror.descends_from(second, first)
    assert not mirror.descends_from(first, second)
    assert mirror.delete_pin()
    assert mirror.pin() is None
    assert not mirror.delete_pin()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a git repository"):
        Mirror(str(tmp_path), "main", str(tmp_path / "state")).open()


def test_remote_is_cloned_once_then_fetched(tmp_path: Path) -> None:
    upstream = GitRepo(tmp_path / "upstream")
    first = upstream.commit({"a.yaml": "type: Mesh\nname: default\n"})
    url = (tmp_path / "upstream").as_uri()
    state = tmp_path / "state"
    mirror = Mirror(url, "main", str(state))
    assert mirror.remote
    mirror.open()
    assert (state / "mirror.git").is_dir()
    assert not list(state.glob("mirror.git.partial-*"))
    assert mirror.head() == first
    assert mirror.last_fetch > 0

    second = upstream.commit({"b.yaml": "type: Mesh\nname: other\n"})
    assert mirror.head() == first  # nothing moves until a fetch
    mirror.fetch()
    assert mirror.head() == second

    again = Mirror(url, "main", str(state))  # a restart reuses the mirror
    again.open()
    assert again.head() == second
