from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import GitRepo, engine_generation_checked


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """An empty git repository with a work tree, branch main."""
    return GitRepo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _engine_proxies_are_consistent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every proxy config the serve loop's engine generates in-process is checked (tests/support.py)."""
    yield from engine_generation_checked(monkeypatch)
