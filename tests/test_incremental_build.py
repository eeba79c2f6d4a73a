"""The server's incremental build equals a build from scratch, commit after commit.

The server's Engine keeps each proxy's last view and reuses it when the proxy's inputs did not
change (reconciler/views/reuse.py), and regenerates only proxies whose views changed. For a
series of commits — one Dataplane, one policy, one MeshService changed, one Dataplane deleted,
routes added — what one long-lived Engine publishes must be, proxy by proxy and resource
version by resource version, what a fresh Engine builds for the same commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.ca.provider import CertificateProvider
from reconciler.reconcile import Engine
from reconciler.source.git import GitSource
from reconciler.xds.resources import SHORT_NAMES, ProxyResources
from tests.support import ALLOW_ALL, GitRepo, dataplane_yaml, mesh, mesh_timeout

Versions = dict[str, dict[tuple[str, str], str]]


def timeout(name: str, seconds: int) -> str:
    """Every outbound's request timeout (named to win over Kuma's default MeshTimeout: on a tie the smaller name wins)."""
    return mesh_timeout(name, f"http:\n  requestTimeout: {seconds}s")


def mesh_service(port: int, app: str) -> str:
    return f"""\
type: MeshService
mesh: default
name: billing
spec:
  selector:
    dataplaneTags:
      app: {app}
  ports:
    - port: {port}
      targetPort: 9100
      appProtocol: http
"""


def billing_client(name: str, port: int) -> str:
    text = dataplane_yaml(name, name, 18500, 9500, {"backend": 20001})
    return text + f"    - port: 20009\n      backendRef:\n        kind: MeshService\n        name: billing\n        port: {port}\n"


ROUTE = """\
type: MeshHTTPRoute
mesh: default
name: split-backend
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path:
                type: PathPrefix
                value: /v2
          default:
            backendRefs:
              - kind: MeshService
                name: orders
                weight: 100
"""

BASE: dict[str, str | bytes | None] = {
    "policies/allow-all.yaml": ALLOW_ALL,
    "policies/timeout.yaml": timeout("a-timeout", 5),
    "services/billing.yaml": mesh_service(8100, "billing"),
    "dataplanes/web.yaml": dataplane_yaml("web", "web", 18080, 9080, {"backend": 20001, "orders": 20002}),
    "dataplanes/backend-1.yaml": dataplane_yaml("backend-1", "backend", 18090, 9090),
    "dataplanes/backend-2.yaml": dataplane_yaml("backend-2", "backend", 18091, 9091),
    "dataplanes/orders.yaml": dataplane_yaml("orders", "orders", 18100, 9100, {"backend": 20003}, tags={"app": "billing"}),
    "dataplanes/shop.yaml": billing_client("shop", 8100),
    "dataplanes/lonely.yaml": dataplane_yaml("lonely", "lonely", 18200, 9200),
}

COMMITS: list[tuple[str, dict[str, str | bytes | None]]] = [
    (
        "one Dataplane moves (its service's consumers see it)",
        {"dataplanes/backend-2.yaml": dataplane_yaml("backend-2", "backend", 18092, 9091)},
    ),
    ("one policy changes", {"policies/timeout.yaml": timeout("a-timeout", 7)}),
    (
        "one MeshService changes its port",
        {"services/billing.yaml": mesh_service(8200, "billing"), "dataplanes/shop.yaml": billing_client("shop", 8200)},
    ),
    ("one Dataplane is deleted", {"dataplanes/backend-1.yaml": None}),
    ("nothing of the mesh changes", {"README.md": "notes\n"}),
    ("a MeshHTTPRoute sends backend's /v2 to orders", {"policies/route.yaml": ROUTE}),
    (
        "orders moves while a route points to it",
        {"dataplanes/orders.yaml": dataplane_yaml("orders", "orders", 18101, 9100, {"backend": 20003}, tags={"app": "billing"})},
    ),
    ("a Dataplane comes back", {"dataplanes/backend-1.yaml": dataplane_yaml("backend-1", "backend", 18090, 9090)}),
]


def versions(resources: ProxyResources) -> dict[tuple[str, str], str]:
    return {(SHORT_NAMES[r.type_url], r.name): r.version for r in resources}


def cold(repo: GitRepo, sha: str, certs: CertificateProvider) -> Versions:
    engine = Engine(GitSource(str(repo.path)), certs)
    evaluation = engine.evaluate(sha)
    assert evaluation.report.valid, evaluation.report.errors
    build = engine.build(evaluation.snapshot, ())
    assert set(build.changed) == set(build.views)
    return {node: versions(r) for node, r in build.changed.items()}


@pytest.mark.parametrize("mtls", [False, True], ids=["plaintext", "mtls"])
def test_every_commit_publishes_what_a_cold_build_of_it_gives(tmp_path: Path, mtls: bool) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh(mtls=mtls), **BASE}, "base")
    # One CA for both engines, so that certificates (and their versions) are the same.
    certs = CertificateProvider()
    engine = Engine(GitSource(str(repo.path)), certs)
    published: Versions = {}
    for what, files in [("base", {}), *COMMITS]:
        sha = repo.commit(files or None, what)
        evaluation = engine.evaluate(sha)
        assert evaluation.report.valid, (what, evaluation.report.errors)
        build = engine.build(evaluation.snapshot, ())
        engine.commit(build)
        for node, resources in build.changed.items():
            assert versions(resources) != published.get(node), f"{what}: {node} republished unchanged"
            published[node] = versions(resources)
        for node in build.removed:
            del published[node]
        assert published == cold(repo, sha, certs), what


def test_a_change_regenerates_only_the_proxies_it_concerns(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh(), **BASE}, "base")
    engine = Engine(GitSource(str(repo.path)))
    changed = []
    for what, files in [("base", {}), *COMMITS[:5]]:
        sha = repo.commit(files or None, what)
        build = engine.build(engine.evaluate(sha).snapshot, ())
        engine.commit(build)
        changed.append(sorted(build.changed))
    consumers_of_backend = ["default.orders", "default.shop", "default.web"]
    assert changed[1:] == [
        ["default.backend-2", *consumers_of_backend],  # backend-2 moved: its own listener, its consumers' endpoints
        consumers_of_backend,  # the timeout of every outbound: these three have outbounds
        ["default.shop"],  # billing's port
        consumers_of_backend,  # backend-1 gone
        [],  # a README
    ]
