"""`run-dataplane --drain-time`: routes travel inside the listener, so a policy change replaces
the filter chain a request is in flight on. Envoy gets kuma-dp's drain time, and the request
in flight on the old chain finishes.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_settled
from tests.gitops.serving import run_cli
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\n"
REQUEST_SECONDS = 6.0


def timeout(seconds: int) -> str:
    # Named before Kuma's default MeshTimeout, so that it wins (the smaller name wins).
    return f"""\
type: MeshTimeout
name: longer-timeout-to-slow
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: slow
      default:
        http:
          requestTimeout: {seconds}s
"""


def slow(handler: http.server.BaseHTTPRequestHandler) -> bool:
    time.sleep(REQUEST_SECONDS)
    return False


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConfigRemote, ControlPlaneProcess, Path, Workload]]:
    root = tmp_path_factory.mktemp("drain")
    remote = ConfigRemote(root)
    with Workload("slow", behaviour=slow) as workload:
        cp = ControlPlaneProcess(remote.bare, root / "state")
        remote.push({"mesh.yaml": MESH}, "mesh")
        cp.start()
        try:
            yield remote, cp, root, workload
        finally:
            cp.stop()


def test_envoy_drains_for_the_drain_time_and_a_request_in_flight_when_its_route_changes_finishes(
    setup: tuple[ConfigRemote, ControlPlaneProcess, Path, Workload],
) -> None:
    remote, cp, root, workload = setup
    name = "web"
    to_slow = free_port()
    files = {
        "slow.yaml": dataplane_yaml("slow-1", "slow", workload.port, workload.port),
        f"{name}.yaml": dataplane_yaml(name, name, free_port(), free_port(), {"slow": to_slow}),
        "timeout.yaml": timeout(20),
    }
    sha = remote.push(files, "web calls slow")
    # The harness passes 1s to every sidecar; the last --drain-time given wins.
    envoy = EnvoyProcess(cp, root / "envoys", name=name, extra=["--drain-time", "30s"])
    envoy.start()
    try:
        options = json.loads(http_get(envoy.admin + "/server_info")[1])["command_line_options"]
        assert options["drain_time"] == "30s"
        cp.wait_applied(sha, [f"default.{name}"])
        wait_settled([envoy])
        result: list[tuple[int, str] | Exception] = []

        def call() -> None:
            try:
                result.append(http_get(f"http://127.0.0.1:{to_slow}/", timeout=20))
            except Exception as e:  # the connection closed under the request
                result.append(e)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the request is in flight on the current filter chain
        changed = remote.push({**files, "timeout.yaml": timeout(25)}, "a new request timeout: the route, so the listener, changes")
        cp.wait_applied(changed, [f"default.{name}"])
        caller.join(30)
        assert result == [(200, "slow\n")]
        assert envoy.stats("listener_manager.listener_in_place_updated").get("listener_manager.listener_in_place_updated", 0) >= 1
    finally:
        envoy.stop()


def test_a_drain_time_that_is_not_whole_seconds_is_a_usage_error() -> None:
    code, out = run_cli("run-dataplane", "--drain-time", "1.5s", "--xds-tls", "none", "--dataplane-file", __file__)
    assert code == 2
    assert "'1.5s': give whole seconds as a duration, e.g. 30s or 1m" in out
