"""The API has its own address (`--api-address`, default 127.0.0.1), apart from xDS's `--address`:
exposing xDS to other hosts never exposes the API."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from tests.api.support import request
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, wait_until
from tests.gitops.helpers import mesh


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def serving(tmp_path: Path, *options: str) -> Iterator[ControlPlaneProcess]:
    """`reconciler serve` with these options, started without waiting on its default addresses."""
    remote = ConfigRemote(tmp_path)
    remote.push({"meshes/default.yaml": mesh()}, "first")
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state", extra=list(options))
    cp.start(wait=False)
    try:
        yield cp
    finally:
        cp.stop()


def test_xds_on_another_address_leaves_the_api_on_loopback(tmp_path: Path) -> None:
    with serving(tmp_path, "--address", "127.0.0.2") as cp:
        wait_until(lambda: listening("127.0.0.2", cp.xds_port), 30, what=f"xDS on 127.0.0.2\n{cp.output()[-3000:]}")
        wait_until(lambda: listening("127.0.0.1", cp.api_port), 30, what=f"API on 127.0.0.1\n{cp.output()[-3000:]}")
        assert request(cp.api, "GET", "/status").status == 200
        assert not listening("127.0.0.2", cp.api_port)
        assert not listening("127.0.0.1", cp.xds_port)


def test_api_address_moves_only_the_api(tmp_path: Path) -> None:
    with serving(tmp_path, "--api-address", "127.0.0.3") as cp:
        wait_until(lambda: listening("127.0.0.3", cp.api_port), 30, what=f"API on 127.0.0.3\n{cp.output()[-3000:]}")
        assert request(f"http://127.0.0.3:{cp.api_port}", "GET", "/status").status == 200
        assert listening("127.0.0.1", cp.xds_port)
        assert not listening("127.0.0.1", cp.api_port)
