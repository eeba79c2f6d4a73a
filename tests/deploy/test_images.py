"""The two images, built with Debian's podman (the machine has no Docker engine) when it can
fetch the base image. On this project's machines it cannot: the network reaches only PyPI and
Debian, not docker.io, so these skip and say so; test_entrypoints.py runs the same commands in
the project's venv instead."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata

import pytest

from tests.deploy.support import DOCKER, ROOT, dockerfile_instructions

BASE = "docker.io/library/python:3.11-slim"


def _first_from() -> str:
    text = (DOCKER / "controlplane.Dockerfile").read_text()
    return next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))


@pytest.fixture(scope="module")
def podman() -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian package podman; `make deploy-tools` installs it as root)")
    assert BASE.endswith(_first_from()), "the base image tested here is the Dockerfiles' FROM"
    if subprocess.run(["podman", "image", "exists", BASE], capture_output=True, timeout=60).returncode != 0:
        try:
            pulled = subprocess.run(["podman", "pull", "-q", BASE], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.skip(f"podman could not pull {BASE} within 120 s: docker.io is not reachable from this machine")
        if pulled.returncode != 0:
            reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"podman cannot pull the base image {BASE} here (the network reaches only PyPI and Debian): {reason}")
    yield "podman"


def build(podman: str, name: str) -> str:
    tag = f"localhost/mesh-reconciler-test/{name}:latest"
    result = subprocess.run(
        [podman, "build", "-q", "-f", str(DOCKER / f"{name}.Dockerfile"), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return tag


def inspect_config(podman: str, tag: str) -> dict[str, object]:
    out = subprocess.run([podman, "image", "inspect", tag], capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)[0]["Config"]  # type: ignore[no-any-return]


def test_the_control_plane_image_builds_runs_reconciler_as_non_root(podman: str) -> None:
    tag = build(podman, "controlplane")
    try:
        config = inspect_config(podman, tag)
        assert config["User"] == dockerfile_instructions(DOCKER / "controlplane.Dockerfile")["USER"]
        version = subprocess.run([podman, "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=120)
        assert version.returncode == 0 and f"version {metadata.version('mesh-reconciler')}" in version.stdout, version.stderr
        whoami = subprocess.run([podman, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True, timeout=120)
        assert whoami.stdout.strip() == "10001"
    finally:
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True, timeout=120)


def test_the_sidecar_image_builds_with_envoy_and_run_dataplane(podman: str) -> None:
    tag = build(podman, "sidecar")
    try:
        helped = subprocess.run([podman, "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0 and "Usage: reconciler run-dataplane" in helped.stdout, helped.stderr
        envoy = subprocess.run(
            [podman, "run", "--rm", "--entrypoint", "envoy", tag, "--version"], capture_output=True, text=True, timeout=120
        )
        assert envoy.returncode == 0, envoy.stderr
    finally:
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True, timeout=120)
