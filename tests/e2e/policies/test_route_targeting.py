"""Policies aimed at one route, one MeshService port or labelled MeshServices change the
traffic of exactly those in real Envoy (issue 12 items 1–4).

One control plane and two sidecars are shared by the module: `web` (the client) and `slow-1`
(in front of an HTTP workload that answers `<anything>/sleep/<seconds>` after that many
seconds). web reaches the same workload five ways, each its own outbound listener:

- `slow` by its `kuma.io/service` tag (Kuma's legacy outbound);
- the MeshService `slow-ms` port 80 (named `http`), `slow-dev` (labels env: dev) and
  `slow-prod` (env: prod) by `backendRef`; all three select slow-1.

Every request is 2 s slow. Kuma's default MeshTimeout lets it through (15 s); a policy that
reaches the request's route or destination with a 1 s request timeout ends it with 504 after
about 1 s. So which requests fail shows exactly where each policy applies. Each test pushes
the whole configuration it needs. The default MeshRetry is skipped, so that a timed-out
request is not retried. Only request timeouts change (routes), never clusters: a changed EDS
cluster would make Envoy fetch its endpoints again (see test_meshtimeout.py).
"""

from __future__ import annotations

import http.server
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, serving, wait_settled
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = """\
type: Mesh
name: default
# Only MeshTimeout is under test: Kuma's default retries would repeat timed-out requests.
skipCreatingInitialPolicies: [MeshRetry]
"""
_SLEEP = re.compile(r"/sleep/([0-9.]+)$")
OUTBOUNDS = ("slow", "slow-ms", "slow-dev", "slow-prod")


def _sleepy(handler: http.server.BaseHTTPRequestHandler) -> bool:
    """`GET <prefix>/sleep/2` answers 200 after 2 seconds; anything else at once."""
    sleep = _SLEEP.search(handler.path)
    if not sleep:
        return False
    time.sleep(float(sleep.group(1)))
    body = b"slow\n"
    try:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the proxy gave up on this request: that is what the tests provoke
    return True


def _meshservice(name: str, inbound_port: int, labels: str = "") -> str:
    return f"""\
type: MeshService
name: {name}
mesh: default
{labels}spec:
  selector:
    dataplaneTags:
      kuma.io/service: slow
  ports:
    - name: http
      port: 80
      targetPort: {inbound_port}
      appProtocol: http
---
"""


def _web(ports: dict[str, int]) -> str:
    outbound = "".join(
        f"    - port: {ports['to_' + name]}\n      backendRef: {{kind: MeshService, name: {name}, port: 80}}\n" for name in OUTBOUNDS[1:]
    )
    return f"""\
type: Dataplane
mesh: default
name: web
networking:
  address: 127.0.0.1
  inbound:
    - port: {ports["web_in"]}
      servicePort: {ports["web_app"]}
      tags:
        kuma.io/service: web
        kuma.io/protocol: http
  outbound:
    - port: {ports["to_slow"]}
      tags:
        kuma.io/service: slow
{outbound}"""


def route(name: str, to: str, prefix: str) -> str:
    """A MeshHTTPRoute of web's towards `to` (a MeshService ref) for paths under `prefix`."""
    return f"""\
type: MeshHTTPRoute
name: {name}
mesh: default
spec:
  targetRef: {{kind: Dataplane, name: web}}
  to:
    - targetRef: {to}
      rules:
        - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]
          default: {{}}
"""


def timeout(name: str, top: str, to: str, request_timeout: str) -> str:
    return f"""\
type: MeshTimeout
name: {name}
mesh: default
spec:
  targetRef: {top}
  to:
    - targetRef: {to}
      default:
        http:
          requestTimeout: {request_timeout}
"""


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    work: Path
    slow: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, policies: dict[str, str] | None = None) -> dict[str, str | None]:
        p = self.ports
        services = _meshservice("slow-ms", p["slow_in"]) + _meshservice("slow-dev", p["slow_in"], "labels:\n  env: dev\n")
        services += _meshservice("slow-prod", p["slow_in"], "labels:\n  env: prod\n")
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": _web(p),
            "dataplanes/slow.yaml": dataplane_yaml("slow-1", "slow", p["slow_in"], self.slow.port),
            "services.yaml": services,
        }
        return out | self.remote.replace_directory("policies", policies)

    def apply(self, policies: dict[str, str] | None = None) -> None:
        sha = self.remote.push(self.files(policies), "policies")
        self.cp.wait_applied(sha, ["default.web", "default.slow-1"])
        wait_settled(self.envoys.values())

    def outcome(self, outbound: str, path: str) -> str:
        """ "ok" (200 after the 2 s the workload takes) or "timeout" (504 after about 1 s)."""
        start = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{self.ports['to_' + outbound]}{path}", timeout=20)
        elapsed = time.monotonic() - start
        if (status, body) == (200, "slow\n"):
            assert elapsed >= 1.9, f"{outbound}{path} answered in {elapsed:.2f}s"
            return "ok"
        assert (status, body) == (504, "upstream request timeout"), (outbound, path, status, body)
        assert 0.9 <= elapsed < 1.8, f"{outbound}{path} timed out after {elapsed:.2f}s, not the configured 1s"
        return "timeout"

    def outcomes(self, path: str = "/any/sleep/2") -> dict[str, str]:
        return {name: self.outcome(name, path) for name in OUTBOUNDS}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("route-targeting")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "web_app", "slow_in", *(f"to_{name}" for name in OUTBOUNDS))}
    with Workload("slow", behaviour=_sleepy) as slow:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), root / "envoys", slow, ports)
        first = remote.push(m.files(), "initial config")
        with serving(m.cp, m.work, ("web", "slow-1"), first) as envoys:
            m.envoys.update(envoys)
            yield m


ALL_OK = dict.fromkeys(OUTBOUNDS, "ok")


def test_a_route_targeted_timeout_applies_on_that_route_only(mesh: Mesh) -> None:
    """Item 1, the issue's example: a mesh-wide 1 s request timeout and a MeshTimeout aimed at
    route-1 with 5 s. Only route-1's requests get 5 s; the catch-all route to the same
    service and every other destination keep the mesh-wide 1 s."""
    mesh.apply(
        {
            "route-1": route("route-1", "{kind: MeshService, name: slow}", "/r1"),
            # Same kind as Kuma's default and a smaller name: applied after it, so it wins.
            "aa-mesh-wide": timeout("aa-mesh-wide", "{kind: Mesh}", "{kind: Mesh}", "1s"),
            "on-route-1": timeout("on-route-1", "{kind: MeshHTTPRoute, name: route-1}", "{kind: Mesh}", "5s"),
        }
    )
    assert mesh.outcome("slow", "/r1/sleep/2") == "ok"
    assert mesh.outcomes() == dict.fromkeys(OUTBOUNDS, "timeout")

    # The other way round: 1 s on route-1 under Kuma's default 15 s.
    mesh.apply(
        {
            "route-1": route("route-1", "{kind: MeshService, name: slow}", "/r1"),
            "on-route-1": timeout("on-route-1", "{kind: MeshHTTPRoute, name: route-1}", "{kind: Mesh}", "1s"),
        }
    )
    assert mesh.outcome("slow", "/r1/sleep/2") == "timeout"
    assert mesh.outcomes() == ALL_OK


def test_a_to_entry_naming_a_route_applies_on_that_route_only(mesh: Mesh) -> None:
    """Item 2: `to[].targetRef: {kind: MeshHTTPRoute}` for a real MeshService's route."""
    mesh.apply(
        {
            "route-ms": route("route-ms", "{kind: MeshService, name: slow-ms}", "/r2"),
            "on-route-ms": timeout("on-route-ms", "{kind: Mesh}", "{kind: MeshHTTPRoute, name: route-ms}", "1s"),
        }
    )
    assert mesh.outcome("slow-ms", "/r2/sleep/2") == "timeout"
    assert mesh.outcomes() == ALL_OK


def test_section_name_names_a_meshservice_port_by_its_name(mesh: Mesh) -> None:
    """Item 3: `sectionName: http` is port 80 of slow-ms, not its other MeshServices, nor the
    legacy outbound to the same workload."""
    mesh.apply({"ms-port": timeout("ms-port", "{kind: Mesh}", "{kind: MeshService, name: slow-ms, sectionName: http}", "1s")})
    assert mesh.outcomes() == {**ALL_OK, "slow-ms": "timeout"}


def test_labels_select_only_the_meshservices_carrying_them(mesh: Mesh) -> None:
    """Item 4: a labels-only ref, then labels with a sectionName."""
    mesh.apply({"dev": timeout("dev", "{kind: Mesh}", "{kind: MeshService, labels: {env: dev}}", "1s")})
    assert mesh.outcomes() == {**ALL_OK, "slow-dev": "timeout"}

    mesh.apply({"prod": timeout("prod", "{kind: Mesh}", "{kind: MeshService, labels: {env: prod}, sectionName: http}", "1s")})
    assert mesh.outcomes() == {**ALL_OK, "slow-prod": "timeout"}
