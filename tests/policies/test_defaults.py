"""Kuma's default policies: built in Python, they are exactly what Kuma's YAML says
(pkg/defaults/mesh/*.go), and a mesh gets them unless it commits or skips them."""

from __future__ import annotations

import pytest

from reconciler.model import Resource
from reconciler.policies.defaults import default_policies, with_default_policies
from reconciler.policies.meshcircuitbreaker.defaults import default_policies as circuit_breaker_defaults
from reconciler.policies.meshretry.defaults import default_policies as retry_defaults
from reconciler.policies.meshtimeout.defaults import default_policies as timeout_defaults
from reconciler.source.loader import load_file

KUMA_YAML = {
    "MeshTimeout": """\
type: MeshTimeout
name: mesh-timeout-all-{mesh}
mesh: {mesh}
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Sidecar]
  from:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 10s
        idleTimeout: 2h
        http:
          requestTimeout: 0s
          streamIdleTimeout: 1h
          maxStreamDuration: 0s
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionTimeout: 5s
        idleTimeout: 1h
        http:
          requestTimeout: 15s
          streamIdleTimeout: 30m
---
type: MeshTimeout
name: mesh-gateways-timeout-all-{mesh}
mesh: {mesh}
spec:
  targetRef:
    kind: Mesh
    proxyTypes: [Gateway]
  from:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 5m
        http:
          streamIdleTimeout: 5s
          requestHeadersTimeout: 500ms
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 1h
        http:
          streamIdleTimeout: 5s
""",
    "MeshRetry": """\
type: MeshRetry
name: mesh-retry-all-{mesh}
mesh: {mesh}
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        tcp:
          maxConnectAttempt: 5
        http:
          numRetries: 5
          perTryTimeout: 16s
          backOff:
            baseInterval: 25ms
            maxInterval: 250ms
        grpc:
          numRetries: 5
          perTryTimeout: 16s
          backOff:
            baseInterval: 25ms
            maxInterval: 250ms
""",
    "MeshCircuitBreaker": """\
type: MeshCircuitBreaker
name: mesh-circuit-breaker-all-{mesh}
mesh: {mesh}
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        connectionLimits:
          maxConnections: 1024
          maxPendingRequests: 1024
          maxRequests: 1024
          maxRetries: 3
""",
}
BUILDERS = {"MeshTimeout": timeout_defaults, "MeshRetry": retry_defaults, "MeshCircuitBreaker": circuit_breaker_defaults}


def _mesh(name: str, skip: list[str] | None = None) -> Resource:
    return Resource.create("Mesh", name, {} if skip is None else {"skipCreatingInitialPolicies": skip}, flat=True)


@pytest.mark.parametrize("kind", sorted(KUMA_YAML))
@pytest.mark.parametrize("mesh", ["default", "payments-eu"])
def test_defaults_are_kumas_yaml(kind: str, mesh: str) -> None:
    loaded = load_file("<kuma>", KUMA_YAML[kind].format(mesh=mesh).encode())
    assert not loaded.problems
    built = BUILDERS[kind](mesh)
    assert built == list(loaded.resources)
    # Same values in the same key order: the digest hashes them, and inspect prints them.
    assert [r.digest for r in built] == [r.digest for r in loaded.resources]
    assert [r.document() for r in built] == [r.document() for r in loaded.resources]


def test_a_new_mesh_gets_kumas_four_defaults_in_plugin_order() -> None:
    names = [(r.type, r.name) for r in default_policies(_mesh("m"))]
    assert names == [
        ("MeshTimeout", "mesh-timeout-all-m"),
        ("MeshTimeout", "mesh-gateways-timeout-all-m"),
        ("MeshCircuitBreaker", "mesh-circuit-breaker-all-m"),
        ("MeshRetry", "mesh-retry-all-m"),
    ]


@pytest.mark.parametrize(
    ("skip", "left"),
    [
        (["*"], []),
        (["MeshRetry"], ["mesh-timeout-all-m", "mesh-gateways-timeout-all-m", "mesh-circuit-breaker-all-m"]),
        (["MeshTimeout", "MeshCircuitBreaker"], ["mesh-retry-all-m"]),
    ],
)
def test_skip_creating_initial_policies(skip: list[str], left: list[str]) -> None:
    assert [r.name for r in default_policies(_mesh("m", skip))] == left


def test_a_committed_policy_of_the_same_name_replaces_the_default() -> None:
    mine = Resource.create("MeshRetry", "mesh-retry-all-m", {"targetRef": {"kind": "Mesh"}, "to": []}, mesh="m")
    result = with_default_policies(_mesh("m"), [mine])
    retries = [r for r in result if r.type == "MeshRetry"]
    assert retries == [mine]
    assert len(result) == 4
