"""The real Envoy accepts what MeshPassthrough makes of the passthrough listeners.

Each case of kuma_plugin_cases.yaml, built into a static bootstrap (the listeners as the
transparent proxy makes them, with `use_original_dst`, plus every cluster the proxy then has),
goes through `envoy --mode validate`, as `plan` checks a proxy's config
(reconciler/commands/envoy_validate.py). Envoy checks what our comparison with Kuma cannot:
proto constraints, filter chain matches that are duplicates of each other, and that every
cluster an inline route names exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from reconciler.commands.envoy_validate import validate_file
from reconciler.dataplane.envoy_binary import EnvoyNotFound, find_envoy
from reconciler.policies.meshpassthrough.envoy import IPV4, IPV6, configure_passthrough, passthrough_cluster
from reconciler.policies.meshproxypatch.envoyjson import to_json
from tests.policies.meshpassthrough.cases import CASES, catch_all_listener

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def envoy() -> str:
    try:
        return find_envoy()
    except EnvoyNotFound as e:
        pytest.skip(f"no Envoy binary to validate with: {e}")


def _bootstrap(listeners: list[Any], clusters: list[Any]) -> dict[str, Any]:
    return {
        "node": {"id": "passthrough-test", "cluster": "passthrough-test"},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def _verdict(envoy: str, tmp_path: Path, listeners: list[Any], clusters: list[Any]) -> tuple[bool, str]:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(_bootstrap(listeners, clusters)), encoding="utf-8")
    verdict = validate_file(envoy, path)
    return verdict.ok, verdict.message


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_envoy_accepts_each_kuma_case(case: dict[str, Any], envoy: str, tmp_path: Path) -> None:
    families = case.get("listeners") or ("ipv4", "ipv6")
    ipv4 = catch_all_listener(IPV4, "0.0.0.0", original_dst=True) if "ipv4" in families else None
    ipv6 = catch_all_listener(IPV6, "::", original_dst=True) if "ipv6" in families else None
    mesh = case.get("meshPassthrough", True)
    # What the transparent proxy generator gives: the ORIGINAL_DST clusters when the Mesh allows it.
    given = [passthrough_cluster(n) for n, present in ((IPV4, ipv4), (IPV6, ipv6)) if mesh and present is not None]
    done = configure_passthrough(case["conf"], mesh, ipv4, ipv6, given)
    listeners = [to_json(x) for x in (done.ipv4, done.ipv6) if x is not None]
    # A catch-all chain whose cluster is gone is Kuma's way of refusing: Envoy accepts a
    # tcp_proxy naming an unknown cluster (it closes such connections), so it stays as is.
    ok, message = _verdict(envoy, tmp_path, listeners, [to_json(c) for c in done.clusters])
    assert ok, message


def test_envoy_rejects_a_route_to_a_missing_cluster(envoy: str, tmp_path: Path) -> None:
    # Proof that the check above sees clusters: drop one HTTP chain's cluster and Envoy refuses.
    conf = {"appendMatch": [{"type": "Domain", "value": "api.example.com", "port": 80, "protocol": "http"}]}
    done = configure_passthrough(conf, True, catch_all_listener(IPV4, "0.0.0.0", original_dst=True))
    assert [c.name for c in done.clusters] == ["meshpassthrough_http_api.example.com_80"]
    ok, _ = _verdict(envoy, tmp_path, [to_json(done.ipv4)], [to_json(c) for c in done.clusters])
    assert ok
    ok, message = _verdict(envoy, tmp_path, [to_json(done.ipv4)], [to_json(cluster_pb2.Cluster(name="other", type=0))])
    assert not ok
    assert "meshpassthrough_http_api.example.com_80" in message
