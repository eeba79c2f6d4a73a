"""Three replicas, one repository, no leader: losing a replica drops no request and pushes
nothing (issue 15's proof, docs/operations.md).

Three `reconciler serve` processes follow one bare repository (each through its own mirror, as
pods do) and read one keys directory; real Envoy sidecars reach them through an Envoy TCP load
balancer that routes only to ready replicas, while a client sends requests through the
sidecars without pause. The mesh runs mTLS with the builtin CA, so the certificates each
replica issues must be the same too. The module shares one set; each test leaves every
replica running and the branch followed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest

from tests.api.support import request
from tests.e2e.ha import Replicas, Traffic, make_keys, responses_received
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.support import ALLOW_ALL, dataplane_yaml, mesh

pytestmark = pytest.mark.envoy

HEADER_ROUTE = """\
type: MeshHTTPRoute
name: backend-generation
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path: {type: PathPrefix, value: /}
          default:
            filters:
              - type: RequestHeaderModifier
                requestHeaderModifier:
                  set: [{name: x-generation, value: "two"}]
"""

NODES = ("default.web", "default.backend-1")


@dataclass
class Ha:
    remote: ConfigRemote
    replicas: Replicas
    envoys: dict[str, EnvoyProcess]
    backend: Workload
    traffic: Traffic
    first: str
    ports: dict[str, int]

    def files(self, *, route: bool = False) -> dict[str, str | None]:
        p = self.ports
        return {
            "meshes/default.yaml": mesh(mtls=True),
            "policies/allow.yaml": ALLOW_ALL,
            "dataplanes/web.yaml": dataplane_yaml("web", "web", p["web_in"], p["web_app"], {"backend": p["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
            "policies/route.yaml": HEADER_ROUTE if route else None,
        }

    def wait_everywhere(self, sha: str, replicas: list[ControlPlaneProcess] | None = None) -> None:
        """Until every live replica (or those given) serves `sha` and every proxy is synced with one."""
        for r in replicas or self.replicas.alive():
            r.wait_applied(sha, timeout=30)
        for node in NODES:
            wait_until(lambda node=node: self.replicas.serving(node), 30, what=f"{node} connected and synced")

    def last_generation_header(self) -> str | None:
        return {k.lower(): v for k, v in self.backend.headers[-1].items()}.get("x-generation")

    def pushes(self) -> dict[str, int]:
        return {name: responses_received(e) for name, e in self.envoys.items()}


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ha]:
    root = tmp_path_factory.mktemp("ha")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "backend_in", "web_to_backend")}
    with Workload("backend") as backend:
        h = Ha(remote, cast(Replicas, None), {}, backend, cast(Traffic, None), "", ports)
        h.first = remote.push(h.files(), "initial config")
        repo = f"file://{remote.bare}"
        make_keys(root / "keys", repo)
        h.replicas = Replicas(repo, root, root / "keys")
        h.traffic = Traffic(f"http://127.0.0.1:{ports['web_to_backend']}/", "200 backend")
        try:
            h.replicas.start()
            frontend = cast(ControlPlaneProcess, h.replicas.frontend)
            for name in ("web", "backend-1"):
                h.envoys[name] = EnvoyProcess(frontend, root / "envoys", name=name)
                h.envoys[name].start()
            h.wait_everywhere(h.first)
            wait_until(lambda: _answer(h.traffic.url) == h.traffic.expected, 20, what="traffic through the sidecars")
            h.traffic.start()
            yield h
        finally:
            h.traffic.stop()
            for envoy in h.envoys.values():
                envoy.stop()
            h.replicas.stop()


def _answer(url: str) -> str:
    try:
        status, body = http_get(url, timeout=2)
    except OSError as e:
        return str(e)
    return f"{status} {body.strip()}"


def test_every_replica_serves_a_proxy_the_same_resources_with_the_same_versions(ha: Ha) -> None:
    for node in NODES:
        mesh, name = node.split(".")
        configs = [r.get(f"/config/{mesh}/{name}") for r in ha.replicas.members]
        assert configs[0]["versions"]["SDS"], "mTLS is on: the proxy has certificates"
        for other in configs[1:]:
            assert other["versions"] == configs[0]["versions"]
            assert other["resources"] == configs[0]["resources"]


def test_killing_the_replica_a_proxy_is_on_moves_it_without_a_push_or_a_failed_request(ha: Ha) -> None:
    victim = ha.replicas.serving("default.web")
    assert victim is not None
    before = ha.pushes()
    with ha.traffic.window() as traffic:
        killed = time.monotonic()
        ha.replicas.kill(victim)
        survivor = wait_until(lambda: ha.replicas.serving("default.web"), 30, what="web reconnected to another replica")
        reconnect = time.monotonic() - killed
        for node in NODES:
            wait_until(lambda node=node: ha.replicas.serving(node), 30, what=f"{node} served")
        time.sleep(1.0)  # anything the new replica would push has arrived by now
    assert traffic["failures"] == [], f"{len(traffic['failures'])} of {traffic['sent']} requests failed"
    assert traffic["sent"] > 0
    assert ha.pushes() == before, "a proxy that reconnected was sent config"
    # The replica it moved to saw it holding the current config for every type it subscribes to.
    types = ha.replicas.proxy_status(survivor, "default.web")["types"]
    assert all(t["resumed"] >= 1 and t["pushes"] == 0 for t in types.values()), types
    assert reconnect < 15
    ha.replicas.restart(victim)


def test_a_commit_pushed_while_a_replica_is_down_is_served_by_the_others_and_the_restarted_one_catches_up(ha: Ha) -> None:
    down = ha.replicas.members[2]
    ha.replicas.kill(down)
    try:
        with ha.traffic.window() as traffic:
            sha = ha.remote.push(ha.files(route=True), "set x-generation")
            ha.wait_everywhere(sha)
            wait_until(lambda: ha.last_generation_header() == "two", 15, what="requests carry the new route's header")
        assert traffic["failures"] == []
    finally:
        ha.replicas.restart(down)
    down.wait_applied(sha, timeout=30)
    ha.remote.push(ha.files(), "back to the first config")


def test_a_rollback_through_one_replica_is_served_by_every_replica(ha: Ha) -> None:
    head = ha.remote.push(ha.files(route=True), "set x-generation")
    ha.wait_everywhere(head)
    wait_until(lambda: ha.last_generation_header() == "two", 15, what="the route's header")
    a, b, c = ha.replicas.members
    token = (ha.replicas.keys_dir / "admin-token").read_text().strip()
    with ha.traffic.window() as traffic:
        reply = request(a.api, "POST", "/rollback", {"revision": ha.first}, token=token, timeout=60)
        assert reply.status == 200, reply.body
        ha.wait_everywhere(ha.first, [a, b, c])
        for r in (b, c):
            assert r.status()["pinnedRevision"].endswith(ha.first)  # type: ignore[index]
        wait_until(lambda: ha.last_generation_header() is None, 15, what="the route's header gone after the rollback")
        reply = request(b.api, "POST", "/resume", {}, token=token, timeout=60)
        assert reply.status == 200, reply.body
        ha.wait_everywhere(head, [a, b, c])
    assert traffic["failures"] == []
    ha.remote.push(ha.files(), "back to the first config")


def test_restarting_every_replica_in_turn_fails_no_request_and_pushes_nothing(ha: Ha) -> None:
    sha = ha.remote.head()
    ha.wait_everywhere(sha)
    time.sleep(1.0)
    before = ha.pushes()
    with ha.traffic.window() as traffic:
        for replica in ha.replicas.members:
            replica.stop()  # SIGTERM, as a rolling update does
            ha.replicas.restart(replica)
            ha.wait_everywhere(sha)
        time.sleep(1.0)
    assert traffic["failures"] == [], traffic["failures"][:5]
    assert ha.pushes() == before
