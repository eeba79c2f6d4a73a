"""Refusing YAML alias bombs: time and peak RSS of `reconciler validate` on a real repository.

Builds real git repositories and runs `reconciler validate --repo R HEAD` in a fresh process
for each, reading the child's own peak RSS from wait4 (no other process is counted):

  baseline   a repository holding one Mesh: what the command costs anyway
  one file   the issue's file: 100 documents of 9 lines (58 KB), each document's aliases
             expanding to 190,126 values, just under the old per-document limit
  commit     10 files of one such document each: every file is within the per-file budget,
             only the commit's budget stops them
  same blob  200 paths naming one 1 MiB blob (a Mesh with a 1 MiB string): a 3 KiB pack, few
             values, 200 MiB to read; only the commit's byte budget stops it

Usage: .venv/bin/python bench/yaml_budget.py [--repeat 3] [--case NAME ...]
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


def make_same_blob_repo(root: Path, paths: int) -> Path:
    """`paths` entries naming one blob, built with git plumbing so nothing is written `paths` times."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    text = 'type: Mesh\nname: big\nlogging:\n  defaultBackend: "' + "x" * (1024 * 1024 - 60) + '"\n'

    def git(*args: str, data: str | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, text=True, check=True, env=ENV)
        return done.stdout.strip()

    blob = git("hash-object", "-w", "--stdin", data=text)
    tree = git("mktree", data="".join(f"100644 blob {blob}\tc{i:03}.yaml\n" for i in range(paths)))
    git("update-ref", "refs/heads/main", git("commit-tree", tree, "-m", "bench"))
    return root


def validate_once(repo: Path) -> tuple[float, float, int, str]:
    """Seconds, peak RSS in MiB, exit code and the first line of output of one validate run."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "validate", "--repo", str(repo), "HEAD"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ,
        cwd=repo,  # no checkout on sys.path[0]
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
    ap.add_argument("--case", action="append", help="run only these cases (baseline, one file, commit, same blob)")
    args = ap.parse_args()
    bomb_file = "---\n".join(bomb_document(i) for i in range(100))
    cases = {
        "baseline": {"mesh.yaml": "type: Mesh\nname: default\n"},
        "one file": {"bomb.yaml": bomb_file},
        "commit": {f"bomb-{i:02}.yaml": bomb_document(i) for i in range(10)},
    }
    print(f"bomb file: {len(bomb_file.encode()):,} bytes, 100 documents")
    names = [*cases, "same blob"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if args.case and name not in args.case:
                continue
            where = Path(tmp) / name.replace(" ", "-")
            repo = make_same_blob_repo(where, 200) if name == "same blob" else make_repo(where, cases[name])
            runs = [validate_once(repo) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            _, _, code, first = runs[-1]
            print(f"{name:9} median {seconds:6.2f} s  peak RSS {rss:7.0f} MiB  exit {code}  {first[:150]}")


if __name__ == "__main__":
    main()
