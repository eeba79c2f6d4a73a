"""MeshProxyPatch in real Envoy: patches of HTTP filters and virtual hosts change what a client
of the mesh sees, and a patch Envoy rejects is held like any rejected config.

One control plane, a client sidecar (web) and a backend sidecar are shared by the module; each
test pushes the whole configuration it needs and sends real requests through web's outbound.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, serving, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = "type: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n"
PROXIES = ("default.web", "default.backend-1")

HEADER_FILTER = """\
type: MeshProxyPatch
mesh: default
name: backend-stamp
spec:
  targetRef:
    kind: Dataplane
    name: backend-1
  default:
    appendModifications:
      - httpFilter:
          operation: {operation}
          match:
            origin: inbound
            name: envoy.filters.http.router
          value: |
            name: envoy.filters.http.header_mutation
            typedConfig:
              '@type': type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                responseMutations:
                  - append:
                      header:
                        key: x-patched-by
                        value: backend-inbound
"""

VIRTUAL_HOST = """\
type: MeshProxyPatch
mesh: default
name: web-outbound-header
spec:
  targetRef:
    kind: Dataplane
    name: web
  default:
    appendModifications:
      - virtualHost:
          operation: Patch
          match:
            origin: outbound
            name: backend
          value: |
            responseHeadersToAdd:
              - header:
                  key: x-route-patched
                  value: "web-outbound"
"""


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    web: Workload
    backend: Workload
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, policies: dict[str, str]) -> dict[str, str | None]:
        p = self.ports
        files: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "dataplanes/web.yaml": dataplane_yaml("web", "web", p["web_in"], self.web.port, {"backend": p["web_to_backend"]}),
            "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", p["backend_in"], self.backend.port),
        }
        return files | self.remote.replace_directory("policies", policies)

    def push(self, policies: dict[str, str]) -> str:
        return self.remote.push(self.files(policies), "policies: " + ", ".join(policies) if policies else "no policies")

    def apply(self, policies: dict[str, str]) -> None:
        self.cp.wait_applied(self.push(policies), PROXIES)
        wait_until(
            lambda: all(self.envoys[name].listeners_settled() for name in ("web", "backend-1")),
            10,
            what="listeners warmed and old filter chains drained",
        )

    def get(self) -> tuple[int, dict[str, str]]:
        """One request through web's outbound on a new connection: status and response headers."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['web_to_backend']}/", headers={"Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
                return response.status, {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, {k.lower(): v for k, v in e.headers.items()}

    def lds(self, node: str) -> dict[str, Any]:
        status = self.cp.status() or {}
        return status.get("proxies", {}).get(node, {}).get("types", {}).get("LDS", {})  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mpp")
    remote = ConfigRemote(root)
    ports = {k: free_port() for k in ("web_in", "backend_in", "web_to_backend")}
    with Workload("web") as web, Workload("backend") as backend:
        m = Mesh(remote, ControlPlaneProcess(remote.bare, root / "state"), web, backend, ports)
        first = remote.push(m.files({}), "initial config")
        with serving(m.cp, root / "envoys", ("web", "backend-1"), first) as envoys:
            m.envoys.update(envoys)
            wait_until(lambda: m.get()[0] == 200, 10, what="backend reachable through web's outbound")
            yield m


def test_an_http_filter_added_by_a_patch_sets_a_response_header_the_client_sees(mesh: Mesh) -> None:
    mesh.apply({})
    status, headers = mesh.get()
    assert status == 200 and "x-patched-by" not in headers
    mesh.apply({"stamp": HEADER_FILTER.format(operation="AddBefore")})
    status, headers = mesh.get()
    assert status == 200
    assert headers.get("x-patched-by") == "backend-inbound"
    # Removing the policy takes the filter away again.
    mesh.apply({})
    assert "x-patched-by" not in mesh.get()[1]


def test_a_virtual_host_patch_on_the_clients_outbound_adds_a_response_header(mesh: Mesh) -> None:
    mesh.apply({"route": VIRTUAL_HOST})
    status, headers = mesh.get()
    assert status == 200
    assert headers.get("x-route-patched") == "web-outbound"
    assert "x-patched-by" not in headers


def test_a_patch_envoy_rejects_is_held_and_the_last_good_config_keeps_serving(mesh: Mesh) -> None:
    mesh.apply({"stamp": HEADER_FILTER.format(operation="AddBefore")})
    # A filter after the router: every field is valid, but Envoy rejects an HTTP filter chain
    # whose terminal filter is not last, and NACKs the listener.
    sha = mesh.push({"stamp": HEADER_FILTER.format(operation="AddAfter")})

    def nacked() -> dict[str, Any] | None:
        lds = mesh.lds("default.backend-1")
        return lds if lds.get("nack", {}).get("revision") == sha else None

    lds = wait_until(nacked, 15, what="LDS NACK from backend's Envoy")
    assert "router" in lds["nack"]["message"] or "terminal" in lds["nack"]["message"]
    assert not mesh.cp.status()["proxies"]["default.backend-1"]["synced"]
    # Envoy keeps the listener it had: the header filter before the router still answers.
    status, headers = mesh.get()
    assert (status, headers.get("x-patched-by")) == (200, "backend-inbound")
    mesh.apply({})
