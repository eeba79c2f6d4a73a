"""The two images, built with Debian's buildah (no Docker engine runs here), when it can fetch
the base image. On this project's machines it cannot: their network reaches only PyPI and
Debian, not docker.io, so these skip and say so, and test_entrypoints.py runs the same commands
in the project's venv instead.

buildah builds and runs with `--isolation chroot`: on these machines (themselves containers)
the OCI runtime cannot create a container ("did not get container create message from
subprocess"), while chroot isolation runs a build's RUN steps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata

import pytest

from tests.deploy.support import DOCKER, ROOT, dockerfile_argv, dockerfile_instructions

BASE = "docker.io/library/python:3.11-slim"


def _first_from() -> str:
    text = (DOCKER / "controlplane.Dockerfile").read_text()
    return next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))


@pytest.fixture(scope="module")
def buildah() -> Iterator[str]:
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (Debian package buildah; `make deploy-tools` installs it as root)")
    assert BASE.endswith(_first_from()), "the base image fetched here is the Dockerfiles' FROM"
    if subprocess.run(["buildah", "inspect", "--type", "image", BASE], capture_output=True, timeout=60).returncode != 0:
        try:
            pulled = subprocess.run(["buildah", "pull", "-q", BASE], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.skip(f"buildah could not pull {BASE} within 120 s: docker.io is not reachable from this machine")
        if pulled.returncode != 0:
            reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"buildah cannot pull the base image {BASE} here (the network reaches only PyPI and Debian): {reason}")
    yield "buildah"


class Image:
    def __init__(self, buildah: str, name: str) -> None:
        self.buildah = buildah
        self.dockerfile = DOCKER / f"{name}.Dockerfile"
        self.tag = f"localhost/mesh-reconciler-test/{name}:latest"

    def build(self) -> None:
        result = subprocess.run(
            [self.buildah, "bud", "--isolation", "chroot", "-q", "-f", str(self.dockerfile), "-t", self.tag, str(ROOT)],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert result.returncode == 0, result.stderr[-4000:]

    def config(self) -> dict[str, object]:
        out = subprocess.run([self.buildah, "inspect", "--type", "image", self.tag], capture_output=True, text=True, check=True, timeout=60)
        return json.loads(out.stdout)["OCIv1"]["config"]  # type: ignore[no-any-return]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """argv in a container of the image, as its USER (buildah run does not apply ENTRYPOINT)."""
        container = subprocess.run([self.buildah, "from", self.tag], capture_output=True, text=True, check=True, timeout=120).stdout.strip()
        try:
            user = str(self.config()["User"])
            return subprocess.run(
                [self.buildah, "run", "--isolation", "chroot", "--user", user, container, "--", *argv],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            subprocess.run([self.buildah, "rm", container], capture_output=True, timeout=60)

    def remove(self) -> None:
        subprocess.run([self.buildah, "rmi", "-f", self.tag], capture_output=True, timeout=120)


def test_the_control_plane_image_builds_and_runs_reconciler_as_non_root(buildah: str) -> None:
    image = Image(buildah, "controlplane")
    image.build()
    try:
        config = image.config()
        assert config["User"] == dockerfile_instructions(image.dockerfile)["USER"]
        assert config["Entrypoint"] == ["reconciler"]
        version = image.run("reconciler", "--version")
        assert version.returncode == 0 and f"version {metadata.version('mesh-reconciler')}" in version.stdout, version.stderr
        assert image.run("id", "-u").stdout.strip() == "10001"
    finally:
        image.remove()


def test_the_sidecar_image_builds_with_envoy_and_run_dataplane(buildah: str) -> None:
    image = Image(buildah, "sidecar")
    image.build()
    try:
        helped = image.run(*dockerfile_argv(image.dockerfile)[:2], "--help")
        assert helped.returncode == 0 and "Usage: reconciler run-dataplane" in helped.stdout, helped.stderr
        envoy = image.run("envoy", "--version")
        assert envoy.returncode == 0, envoy.stderr
    finally:
        image.remove()
