"""From git to configure_passthrough's inputs: the proxy's merged MeshPassthrough and the Mesh's flag.

MeshPassthrough has only a top-level `default`, so its PLUGIN gives the proxy one merged conf
(`ProxyView.confs["MeshPassthrough"]`); policies that select the proxy merge in Kuma's order
and their `appendMatch` lists concatenate, so a mesh-wide allowance and a proxy-specific one
both hold.
"""

from __future__ import annotations

from reconciler.mesh.model import build_mesh_model
from reconciler.policies.meshpassthrough.envoy import IPV4, KIND, configure_passthrough, mesh_passthrough
from reconciler.validate import validate
from reconciler.views.proxy import ProxyView, proxy_views
from tests.policies.meshpassthrough.cases import catch_all_listener
from tests.support import dataplane_yaml, snapshot_of_text

RESOURCES = f"""\
type: Mesh
name: default
networking:
  outbound:
    passthrough: false
---
type: MeshPassthrough
mesh: default
name: mesh-wide
spec:
  targetRef: {{kind: Mesh}}
  default:
    appendMatch:
      - {{type: Domain, value: api.example.com, port: 443, protocol: tls}}
---
type: MeshPassthrough
mesh: default
name: web-only
spec:
  targetRef: {{kind: Dataplane, labels: {{app: web}}}}
  default:
    passthroughMode: Matched
    appendMatch:
      - {{type: CIDR, value: 10.20.0.0/16, port: 5432, protocol: tcp}}
---
{dataplane_yaml("web-1", "web", 20001, 8080, labels={"app": "web"})}
---
{dataplane_yaml("backend-1", "backend", 20002, 8081)}
"""


def _views() -> dict[str, ProxyView]:
    snapshot = snapshot_of_text(RESOURCES)
    report = validate(snapshot)
    assert report.valid, [p.render() for p in report.errors]
    return dict(proxy_views(build_mesh_model(snapshot.resources)))


def test_the_proxy_gets_the_merged_default_and_the_mesh_flag() -> None:
    views = _views()
    web, backend = views["default.web-1"], views["default.backend-1"]
    web_conf = web.confs[KIND]
    assert [m["value"] for m in web_conf["appendMatch"]] == ["api.example.com", "10.20.0.0/16"]
    assert [m["value"] for m in backend.confs[KIND]["appendMatch"]] == ["api.example.com"]
    assert mesh_passthrough(web.mesh.resource.spec) is False
    done = configure_passthrough(web_conf, False, catch_all_listener(IPV4, "0.0.0.0", original_dst=True))
    assert done.ipv4 is not None
    assert [c.name for c in done.ipv4.filter_chains] == [
        "meshpassthrough_tls_api.example.com_443",
        "meshpassthrough_tcp_10.20.0.0/16_5432",
    ]
    assert [c.name for c in done.clusters] == ["meshpassthrough_tcp_10.20.0.0/16_5432", "meshpassthrough_tls_api.example.com_443"]
