"""What a transparent proxy is given: Kuma's passthrough listeners and clusters, its listeners
that do not bind, the mesh's virtual outbounds narrowed by reachableServices/reachableBackends,
and the DNS records its sidecar fetches on `/dns` (docs/networking.md).

The model's virtual outbounds and DNS records are set by hand here: reconciler/mesh/vips.py
fills them from the commit; what is tested is what the views and the generator make of them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from reconciler.frozen import FrozenDict
from reconciler.mesh.model import DnsRecord, MeshModel, Outbound, build_mesh_model
from reconciler.mesh.shape import SHAPE_LABEL
from reconciler.views.proxy import ProxyView, proxy_view, proxy_views
from reconciler.views.reuse import Reuse
from reconciler.xds.resources import CLUSTER, LISTENER, ProxyResources
from tests.support import dataplane_yaml, generate_checked, mesh_passthrough, snapshot_of_text

BACKEND = dataplane_yaml("backend-1", "backend", 8080, 18080)
VIRTUAL = (
    Outbound("240.0.0.1", 80, "backend", FrozenDict({"kuma.io/service": "backend"})),
    Outbound("240.0.0.2", 80, "other", FrozenDict({"kuma.io/service": "other"})),
    Outbound("240.0.0.3", 8080, "", backend_ref=("MeshService", "api", 8080)),
    Outbound("240.0.0.3", 9090, "", backend_ref=("MeshService", "api", 9090)),
    Outbound("240.0.0.4", 443, "", backend_ref=("MeshExternalService", "httpbin", 443)),
)
DNS = (
    DnsRecord("api.svc.mesh.local", ("240.0.0.3",)),
    DnsRecord("backend.mesh", ("240.0.0.1",)),
    DnsRecord("nobody.mesh", ("240.0.0.9",)),
    DnsRecord("other.mesh", ("240.0.0.2",)),
)
API = """\
type: MeshService
mesh: default
name: api
labels:
  team: core
spec:
  selector:
    dataplaneTags:
      kuma.io/service: api
  ports:
    - port: 8080
      name: http
      appProtocol: http
    - port: 9090
      name: admin
      appProtocol: tcp
"""


def _web(tp: str = "", outbounds: dict[str, int] | None = None, labels: dict[str, str] | None = None) -> str:
    text = dataplane_yaml("web-1", "web", 7070, 17070, outbounds, labels=labels)
    block = "  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n"
    block += "".join(f"    {line}\n" for line in tp.splitlines())
    return text.replace("networking:\n  address: 127.0.0.1\n", "networking:\n  address: 127.0.0.1\n" + block)


def _model(*docs: str, mesh: str = "type: Mesh\nname: default\n", virtual: tuple[Outbound, ...] = VIRTUAL) -> MeshModel:
    snapshot = snapshot_of_text("\n---\n".join((mesh, BACKEND, *docs)))
    model = build_mesh_model(snapshot.resources)
    return replace(model, virtual_outbounds={"default": virtual}, dns={"default": DNS})


def _view(model: MeshModel, node: str = "default.web-1") -> ProxyView:
    view = proxy_view(model, node)
    assert view is not None
    return view


def _generated(*docs: str, **kw: Any) -> tuple[ProxyView, ProxyResources]:
    view = _view(_model(*docs, **kw))
    return view, generate_checked(view)


def _addresses(view: ProxyView) -> list[tuple[str, int]]:
    return [(o.outbound.address, o.outbound.port) for o in view.outbounds]


def _dns_document(resources: ProxyResources) -> tuple[str, str]:
    """The body and ETag the dynamic-config listener serves on /dns."""
    hcm = resources.of(LISTENER)["_kuma:dynamicconfig"].to_dict()["filterChains"][0]["filters"][0]["typedConfig"]
    routes = hcm["routeConfig"]["virtualHosts"][0]["routes"]
    served = next(r for r in routes if r["match"] == {"path": "/dns"})
    return served["directResponse"]["body"]["inlineString"], served["responseHeadersToAdd"][0]["header"]["value"]


def test_a_transparent_proxy_gets_kumas_passthrough_listeners_and_clusters() -> None:
    _, resources = _generated(_web())
    listeners, clusters = resources.of(LISTENER), resources.of(CLUSTER)
    for family, everywhere in ((4, "0.0.0.0"), (6, "::")):
        outbound = listeners[f"outbound:passthrough:ipv{family}"].to_dict()
        # Field for field Kuma v2.14.3's golden (transparent-proxy/02.envoy.golden.yaml).
        assert outbound == {
            "name": f"outbound:passthrough:ipv{family}",
            "address": {"socketAddress": {"address": everywhere, "portValue": 15001}},
            "filterChains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.tcp_proxy",
                            "typedConfig": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                "statPrefix": f"outbound_passthrough_ipv{family}",
                                "cluster": f"outbound:passthrough:ipv{family}",
                            },
                        }
                    ]
                }
            ],
            "useOriginalDst": True,
            "trafficDirection": "OUTBOUND",
        }
        inbound = listeners[f"inbound:passthrough:ipv{family}"].to_dict()
        assert inbound["address"]["socketAddress"] == {"address": everywhere, "portValue": 15006}
        assert (inbound["useOriginalDst"], inbound["trafficDirection"], inbound["enableReusePort"]) == (True, "INBOUND", False)
        assert clusters[f"outbound:passthrough:ipv{family}"].to_dict() == {
            "name": f"outbound:passthrough:ipv{family}",
            "altStatName": f"outbound_passthrough_ipv{family}",
            "type": "ORIGINAL_DST",
            "lbPolicy": "CLUSTER_PROVIDED",
            "connectTimeout": "5s",
        }
        bind = clusters[f"inbound:passthrough:ipv{family}"].to_dict()["upstreamBindConfig"]
        assert bind == {"sourceAddress": {"address": "127.0.0.6" if family == 4 else "::6", "portValue": 0}}
    assert clusters["self_transparentproxy_no_destination_inbound"].to_dict()["type"] == "STATIC"


def test_every_inbound_and_outbound_listener_of_a_transparent_proxy_leaves_the_port_to_the_passthrough_listeners() -> None:
    _, resources = _generated(_web(outbounds={"backend": 10001}))
    listeners = {n: r.to_dict() for n, r in resources.of(LISTENER).items()}
    own = [n for n in listeners if n.startswith(("inbound:", "outbound:")) and ":passthrough:" not in n]
    assert "inbound:127.0.0.1:7070" in own and "outbound:127.0.0.1:10001" in own and "outbound:240.0.0.1:80" in own
    for name in own:
        assert listeners[name]["bindToPort"] is False, name
    for name in [n for n in listeners if ":passthrough:" in n]:
        assert "bindToPort" not in listeners[name], name  # the passthrough listeners themselves bind


def test_ipv4_mode_has_no_ipv6_twins_and_no_ipv6_dns_answers() -> None:
    _, resources = _generated(_web("ipFamilyMode: IPv4"))
    assert not [n for t in (LISTENER, CLUSTER) for n in resources.of(t) if n.endswith("ipv6")]
    body, _ = _dns_document(resources)
    assert all(":" not in ip for record in json.loads(body)["records"] for ip in record["ips"])


def test_passthrough_off_keeps_the_listener_without_its_cluster_so_envoy_closes_unclaimed_connections() -> None:
    mesh = "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n"
    _, resources = _generated(_web(), mesh=mesh)  # generate_checked: accepted by the consistency check
    assert "outbound:passthrough:ipv4" in resources.of(LISTENER)
    assert not [n for n in resources.of(CLUSTER) if n.startswith("outbound:passthrough")]
    assert "inbound:passthrough:ipv4" in resources.of(CLUSTER)


def test_a_proxy_without_transparent_proxying_is_given_what_it_was_given_before() -> None:
    model = _model(dataplane_yaml("plain-1", "plain", 7071, 17071, {"backend": 10002}))
    plain = generate_checked(_view(model, "default.plain-1"))
    before = generate_checked(_view(replace(model, virtual_outbounds={}, dns={}), "default.plain-1"))
    assert {t: set(v) for t, v in plain.by_type.items()} == {t: set(v) for t, v in before.by_type.items()}
    assert all(plain.of(t)[n] == before.of(t)[n] for t in plain.by_type for n in plain.of(t))
    assert not [n for n in plain.of(LISTENER) if "passthrough" in n or n == "_kuma:dynamicconfig"]


def test_virtual_outbounds_follow_the_declared_ones_and_a_declared_one_wins_at_its_address() -> None:
    declared = _web().replace(
        "  transparentProxying:",
        "  outbound:\n    - address: 240.0.0.2\n      port: 80\n      tags:\n        kuma.io/service: backend\n  transparentProxying:",
    )
    view = _view(_model(declared))
    assert _addresses(view) == [("240.0.0.2", 80), ("240.0.0.1", 80), ("240.0.0.3", 8080), ("240.0.0.3", 9090), ("240.0.0.4", 443)]
    assert view.outbounds[0].service_name == "backend"


def test_reachable_services_keep_only_the_named_kuma_services_and_drop_mesh_services() -> None:
    view = _view(_model(_web("reachableServices: [backend]")))
    assert _addresses(view) == [("240.0.0.1", 80)]
    assert [r.name for r in view.dns] == ["backend.mesh"]


def test_reachable_backends_select_by_name_labels_and_port() -> None:
    by_port = _view(_model(API, _web("reachableBackends:\n  refs:\n    - kind: MeshService\n      name: api\n      port: 9090")))
    assert _addresses(by_port) == [("240.0.0.1", 80), ("240.0.0.2", 80), ("240.0.0.3", 9090)]
    by_labels = _view(_model(API, _web("reachableBackends:\n  refs:\n    - kind: MeshService\n      labels:\n        team: core")))
    assert _addresses(by_labels)[2:] == [("240.0.0.3", 8080), ("240.0.0.3", 9090)]
    external = _view(_model(API, _web("reachableBackends:\n  refs:\n    - kind: MeshExternalService\n      name: httpbin")))
    assert _addresses(external)[2:] == [("240.0.0.4", 443)]
    nothing = _view(_model(API, _web("reachableBackends:\n  refs: []")))
    assert _addresses(nothing) == [("240.0.0.1", 80), ("240.0.0.2", 80)]


def test_mesh_services_mode_reachable_backends_gives_mesh_services_only_to_proxies_listing_them() -> None:
    mesh = "type: Mesh\nname: default\nmeshServices:\n  mode: ReachableBackends\n"
    assert _addresses(_view(_model(API, _web(), mesh=mesh))) == [("240.0.0.1", 80), ("240.0.0.2", 80)]


def test_a_virtual_outbound_at_the_proxys_own_inbound_is_left_out() -> None:
    view = _view(_model(_web(), virtual=(*VIRTUAL, Outbound("127.0.0.1", 7070, "web"))))
    assert ("127.0.0.1", 7070) not in _addresses(view)


def test_a_transparent_proxy_keeps_kumas_shape_even_when_labelled_compact() -> None:
    view = _view(_model(_web(labels={SHAPE_LABEL: "compact"})))
    assert view.shape.shape == "kuma" and "transparent" in view.shape.reason


def test_dns_lists_the_names_of_the_proxys_outbounds_with_kumas_body_and_etag() -> None:
    _, resources = _generated(_web("reachableServices: [backend, other]", labels={"kuma.io/zone": "east"}))
    body, tag = _dns_document(resources)
    assert body == (
        '{"records":[{"name":"backend.mesh","ips":["240.0.0.1","::ffff:f000:1"]},'
        '{"name":"other.mesh","ips":["240.0.0.2","::ffff:f000:2"]}],'
        '"ttl":30,"extraLabels":{"kuma_io_zone":"east","mesh":"default"}}'
    )
    assert tag == hashlib.sha256(body.encode()).hexdigest()
    routes = resources.of(LISTENER)["_kuma:dynamicconfig"].to_dict()["filterChains"][0]["filters"][0]["typedConfig"]["routeConfig"]
    not_modified = routes["virtualHosts"][0]["routes"][0]
    assert not_modified["match"]["headers"][0] == {"name": "If-None-Match", "stringMatch": {"exact": tag}}
    assert not_modified["directResponse"] == {"status": 304}


def test_with_meshmetric_one_dynamic_config_listener_serves_dns_and_meshmetric() -> None:
    metric = (
        "type: MeshMetric\nmesh: default\nname: metrics\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n"
        "    backends:\n      - type: Prometheus\n        prometheus:\n          port: 5670\n          path: /metrics\n"
    )
    _, resources = _generated(_web(), metric)
    hcm = resources.of(LISTENER)["_kuma:dynamicconfig"].to_dict()["filterChains"][0]["filters"][0]["typedConfig"]
    paths = [r["match"]["path"] for r in hcm["routeConfig"]["virtualHosts"][0]["routes"]]
    assert paths == ["/dns", "/dns", "/meshmetric", "/meshmetric"]
    bodies = [
        r["directResponse"]["body"]["inlineString"]
        for r in hcm["routeConfig"]["virtualHosts"][0]["routes"]
        if "body" in r.get("directResponse", {})
    ]
    assert hcm["routeConfig"]["maxDirectResponseBodySizeBytes"] == max(len(b.encode()) for b in bodies)


def test_a_transparent_proxys_view_is_built_again_when_its_meshs_virtual_outbounds_change() -> None:
    model = _model(_web(), dataplane_yaml("plain-1", "plain", 7071, 17071, {"backend": 10002}))
    reuse = Reuse()
    first = proxy_views(model, reuse=reuse)
    again = proxy_views(replace(model), reuse=reuse)
    assert again["default.web-1"] is first["default.web-1"]
    fewer = replace(model, virtual_outbounds={"default": VIRTUAL[:1]})
    changed = proxy_views(fewer, reuse=reuse)
    assert changed["default.plain-1"] is first["default.plain-1"]
    assert _addresses(changed["default.web-1"]) == [("240.0.0.1", 80)]
    renamed = replace(fewer, dns={"default": (DnsRecord("backend.other", ("240.0.0.1",)),)})
    assert [r.name for r in proxy_views(renamed, reuse=reuse)["default.web-1"].dns] == ["backend.other"]


def test_a_meshproxypatch_finds_the_passthrough_listeners_by_kumas_origin() -> None:
    patch = (
        "type: MeshProxyPatch\nmesh: default\nname: tp\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n    appendModifications:\n"
        "      - listener:\n          operation: Patch\n          match:\n            origin: transparent\n"
        "          value: |\n            perConnectionBufferLimitBytes: 1024\n"
    )
    _, resources = _generated(_web("ipFamilyMode: IPv4"), patch)
    patched = {n for n, r in resources.of(LISTENER).items() if r.to_dict().get("perConnectionBufferLimitBytes") == 1024}
    assert patched == {"outbound:passthrough:ipv4", "inbound:passthrough:ipv4"}


def test_declared_backend_ref_outbounds_select_the_backends_as_in_kuma() -> None:
    declared = _web().replace(
        "  transparentProxying:",
        "  outbound:\n    - port: 10005\n      backendRef:\n        kind: MeshService\n        name: api\n        port: 8080\n  transparentProxying:",
    )
    view = _view(_model(API, declared))
    assert _addresses(view) == [("127.0.0.1", 10005), ("240.0.0.1", 80), ("240.0.0.2", 80), ("240.0.0.3", 8080)]


PASSTHROUGH_OFF = "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n"
LET_OUT = mesh_passthrough("let-out", "Matched", ("IP", "10.250.0.9", 8080, "tcp"))


def test_a_meshpassthrough_rewrites_the_outbound_passthrough_listener_of_a_transparent_proxy() -> None:
    _, resources = _generated(_web(), LET_OUT, mesh=PASSTHROUGH_OFF)
    listener = resources.of(LISTENER)["outbound:passthrough:ipv4"].message()
    matched = [c for c in listener.filter_chains if c.filter_chain_match.destination_port.value == 8080]
    assert [r.address_prefix for r in matched[0].filter_chain_match.prefix_ranges] == ["10.250.0.9"]
    assert "meshpassthrough_tcp_10.250.0.9_8080" in resources.of(CLUSTER)
    # What the policy does not list has no way out: the catch-all passthrough cluster is not served.
    assert "outbound:passthrough:ipv4" not in resources.of(CLUSTER)
    # The inbound side is untouched.
    assert "inbound:passthrough:ipv4" in resources.of(CLUSTER)


def test_mode_all_reopens_a_passthrough_off_mesh_for_the_proxies_it_selects() -> None:
    policy = mesh_passthrough("let-all-out", "All")
    _, resources = _generated(_web(), policy, mesh=PASSTHROUGH_OFF)
    assert "outbound:passthrough:ipv4" in resources.of(CLUSTER)


def test_a_transparent_proxys_local_clusters_connect_from_the_passthrough_source() -> None:
    # The redirect sends the proxy's own connections to this host's address back to its inbound
    # port, except those from 127.0.0.6 (Kuma's inbound generator binds the same source).
    _, resources = _generated(_web().replace("address: 127.0.0.1", "address: 10.1.2.3"))
    local = [c.message() for name, c in resources.of(CLUSTER).items() if name.startswith("localhost:")]
    assert local and all(c.upstream_bind_config.source_address.address == "127.0.0.6" for c in local)
    plain_dataplane = _web().replace("address: 127.0.0.1", "address: 10.1.2.3").replace("  transparentProxying:", "  x:")
    plain = generate_checked(_view(_model(plain_dataplane)))
    assert not [c for n, c in plain.of(CLUSTER).items() if n.startswith("localhost:") and c.message().HasField("upstream_bind_config")]


def test_meshpassthroughs_that_disagree_on_a_port_leave_nothing_out_and_say_why() -> None:
    # Each policy is valid alone; merged, port 80 would carry HTTP and HTTP/2 (Kuma fails such
    # a proxy's config). Nothing leaves the mesh, and the proxy's problems (what `plan` lists) say why.
    http = mesh_passthrough("http-out", "Matched", ("Domain", "a.example", 80, "http"))
    http2 = mesh_passthrough("http2-out", "Matched", ("Domain", "b.example", 80, "http2"))
    _, resources = _generated(_web(), http, http2, mesh=PASSTHROUGH_OFF)
    assert [p for p in resources.problems if p.startswith("MeshPassthrough: ")], resources.problems
    assert not [n for n in resources.of(CLUSTER) if n.startswith(("outbound:passthrough", "meshpassthrough_"))]
