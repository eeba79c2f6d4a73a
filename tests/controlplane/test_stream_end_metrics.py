"""Every ADS stream's end is logged with its cause (tests/xds/test_stream_storm.py) and counted
in the control plane's metrics by mode and gRPC status code, for an alert on refused streams."""

from __future__ import annotations

from pathlib import Path

from reconciler.xds.resources import CLUSTER, LISTENER
from tests.e2e.harness import wait_until
from tests.security.support import AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo, mesh


def test_stream_ends_are_counted_by_mode_and_code(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": mesh(), "web.yaml": dataplane_yaml("web", "web")})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    registry = cp.cp.metrics.registry

    def ended(mode: str, code: str) -> float:
        return registry.get_sample_value("reconciler_xds_stream_ends_total", {"mode": mode, "code": code}) or 0.0

    try:
        cp.wait_applied(sha)
        client = AdsClient(cp.target, delta=True)
        client.open("default.web")
        client.wait_types(LISTENER, CLUSTER)
        client.drop()  # the proxy goes away: its connection closes
        wait_until(lambda: ended("delta", "CANCELLED") == 1, 10, what="the delta stream's end counted")
        assert ended("sotw", "CANCELLED") == 0
        client = AdsClient(cp.target)
        client.open("default.web")
        client.wait_types(LISTENER, CLUSTER)
        client.drop()
        wait_until(lambda: ended("sotw", "CANCELLED") == 1, 10, what="the SotW stream's end counted")
        assert ended("delta", "CANCELLED") == 1
    finally:
        cp.stop()
