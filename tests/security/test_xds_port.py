"""The xDS port belongs to one control plane: two real `reconciler serve` processes.

gRPC turns SO_REUSEPORT on by default, so a second control plane (with its own CA and
signing keys) used to bind the same port silently, and the kernel split new proxy
connections between the two. Now the second one exits 2 with one line naming the port.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from reconciler.xds.resources import CLUSTER, LISTENER
from tests.e2e.harness import PYTHON, ControlPlaneProcess, free_port
from tests.security.support import MESH, AdsClient, dataplane_yaml
from tests.support import GitRepo


@pytest.fixture
def first(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"mesh.yaml": MESH, "web.yaml": dataplane_yaml("web", "web")})
    cp = ControlPlaneProcess(repo.path, tmp_path / "first", shared_identity=False, extra=["--xds-first-request-timeout", "3"])
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def test_second_serve_on_the_same_xds_port_exits_2_naming_the_port(first: ControlPlaneProcess, tmp_path: Path) -> None:
    second = subprocess.run(
        [
            PYTHON,
            "-m",
            "reconciler",
            "serve",
            "--repo",
            str(tmp_path / "repo"),
            "--state-dir",
            str(tmp_path / "second"),
            "--address",
            "127.0.0.1",
            "--xds-port",
            str(first.xds_port),
            "--api-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,  # before the fix the second one served on, until this timeout
    )
    assert second.returncode == 2, second.stderr
    assert second.stderr.splitlines() == [
        f"Error: cannot serve xDS on 127.0.0.1:{first.xds_port}: Address already in use (another `reconciler serve` or another program listens on it)"
    ]
    # The first control plane still serves every proxy, with its own CA.
    assert first.ca_cert is not None
    client = AdsClient(first.xds, ca_pem=first.ca_cert.read_bytes())
    client.open("default.web", token=first.issue_token("web"))
    client.wait_types(LISTENER, CLUSTER)
    client.close()


def test_serve_closes_a_stream_that_sends_nothing_within_its_first_request_timeout(first: ControlPlaneProcess) -> None:
    assert first.ca_cert is not None
    client = AdsClient(first.xds, ca_pem=first.ca_cert.read_bytes())
    error = client.wait_end(timeout=15)
    assert (error.code(), error.details()) == (grpc.StatusCode.DEADLINE_EXCEEDED, "no DiscoveryRequest within 3s of opening the stream")
    client.close()


def test_second_serve_on_the_same_api_port_exits_2_naming_it_and_stops_what_it_started(first: ControlPlaneProcess, tmp_path: Path) -> None:
    # Before: the API's bind failed after the xDS server had started, with a traceback and
    # "Event loop is closed" noise from the gRPC server left running.
    xds_port = free_port()
    second = subprocess.run(
        [
            PYTHON,
            "-m",
            "reconciler",
            "serve",
            "--repo",
            str(tmp_path / "repo"),
            "--state-dir",
            str(tmp_path / "second"),
            "--address",
            "127.0.0.1",
            "--xds-port",
            str(xds_port),
            "--api-port",
            str(first.api_port),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2, second.stderr
    assert second.stderr.splitlines() == [
        f"Error: cannot serve the API on 127.0.0.1:{first.api_port}: Address already in use (another `reconciler serve` or another program listens on it)"
    ]
    assert first.status() is not None  # the first one's API still answers
