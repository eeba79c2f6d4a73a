from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """An empty git repository with a work tree, branch main."""
    return GitRepo(tmp_path / "repo")
