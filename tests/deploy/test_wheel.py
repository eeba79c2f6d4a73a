"""The images' first stage, outside a container: the build context that .dockerignore lets
through (the same COPY lines as the Dockerfiles) builds a wheel that holds the whole package,
its JSON Schemas and the `reconciler` command, which is all the second stage installs."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.support import DOCKER, ROOT


def dockerignore_admits(rel: str, rules: list[str]) -> bool:
    """.dockerignore's rule: the last pattern that matches decides; `!` re-admits."""
    admitted = True
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if hit:
            admitted = negate
    return admitted


def build_context(target: Path) -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".venv/")) and dockerignore_admits(rel, rules):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / rel)


def test_the_context_the_images_get_builds_a_complete_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    build_context(context)
    copied = {p.relative_to(context).parts[0] for p in context.iterdir()}
    assert copied == {"pyproject.toml", "README.md", "reconciler", "schemas"}
    for dockerfile in ("controlplane.Dockerfile", "sidecar.Dockerfile"):
        lines = (DOCKER / dockerfile).read_text().splitlines()
        sources = {src for line in lines if line.startswith("COPY ") and "--from" not in line for src in line.split()[1:-1]}
        assert sources == copied, f"{dockerfile} copies what .dockerignore admits"
    # The build backend is the venv's (hatchling, a test extra): no download, as in the image's stage.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("mesh_reconciler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "reconciler").rglob("*.py")}
    assert sources <= names, sorted(sources - names)[:10]
    schemas = {f"reconciler/_schemas/{p.relative_to(ROOT / 'schemas').as_posix()}" for p in (ROOT / "schemas").rglob("*") if p.is_file()}
    assert schemas and schemas <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "reconciler = reconciler.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
