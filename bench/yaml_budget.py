"""Refusing YAML alias bombs: time and peak RSS of `reconciler validate` on a real repository.

Builds real git repositories and runs `reconciler validate --repo R HEAD` in a fresh process
for each, reading the child's own peak RSS from wait4 (no other process is counted):

  baseline   a repository holding one Mesh: what the command costs anyway
  one file   the issue's file: 100 documents of 9 lines (58 KB), each document's aliases
             expanding to 190,126 values, just under the old per-document limit
  commit     10 files of one such document each: every file is within the per-file budget,
             only the commit's budget stops them

Usage: .venv/bin/python bench/yaml_budget.py [--repeat 3]
To measure another checkout, put it first on PYTHONPATH (the child runs `python -m reconciler`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}


def bomb_document(i: int) -> str:
    """A Mesh whose `logging` aliases expand to 190,126 values (10 x 10 x ... lists)."""
    lines = ["type: Mesh", f"name: bomb-{i}", "logging:", "  level1: &level1 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(2, 6):
        lines.append(f"  level{n}: &level{n} [" + ", ".join([f"*level{n - 1}"] * 10) + "]")
    lines.append("  level6: [" + ", ".join(["*level4"] * 6) + "]")
    return "\n".join(lines) + "\n"


def make_repo(root: Path, files: dict[str, str]) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-q", "-m", "bench"], cwd=root, check=True, env=ENV)
    return root


def validate_once(repo: Path) -> tuple[float, float, int, str]:
    """Seconds, peak RSS in MiB, exit code and the first line of output of one validate run."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "validate", "--repo", str(repo), "HEAD"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ, cwd=repo,  # no checkout on sys.path[0]
    )
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    first = output.splitlines()[0] if output else ""
    return seconds, usage.ru_maxrss / 1024, child.returncode, first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bomb_file = "---\n".join(bomb_document(i) for i in range(100))
    cases = {
        "baseline": {"mesh.yaml": "type: Mesh\nname: default\n"},
        "one file": {"bomb.yaml": bomb_file},
        "commit": {f"bomb-{i:02}.yaml": bomb_document(i) for i in range(10)},
    }
    print(f"bomb file: {len(bomb_file.encode()):,} bytes, 100 documents")
    with tempfile.TemporaryDirectory() as tmp:
        for name, files in cases.items():
            repo = make_repo(Path(tmp) / name.replace(" ", "-"), files)
            runs = [validate_once(repo) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            _, _, code, first = runs[-1]
            print(f"{name:9} median {seconds:6.2f} s  peak RSS {rss:7.0f} MiB  exit {code}  {first[:150]}")


if __name__ == "__main__":
    main()
