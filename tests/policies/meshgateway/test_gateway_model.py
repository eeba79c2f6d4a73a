"""The builtin gateway's model beyond the golden cases: hostname rules, unusable certificates,
listeners without routes, and which proxies get a gateway's certificate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.mesh.gateway_certificates import server_secret
from reconciler.mesh.hostnames import hostname_contains, hostnames_match, sort_hostnames
from reconciler.mesh.model import build_mesh_model
from reconciler.views.proxy import proxy_views
from reconciler.xds.resources import LISTENER, ROUTE, SECRET
from tests.support import generate_checked, snapshot_of_text

HERE = Path(__file__).parent
HTTPS_CASE = (HERE / "https-terminate-with-secret.input.yaml").read_text(encoding="utf-8")


def resources(text: str, node: str = "default.edge-1") -> dict[str, dict[str, dict[str, Any]]]:
    views = proxy_views(build_mesh_model(snapshot_of_text(text).resources))
    generated = generate_checked(views[node])
    return {t: {name: r.to_dict() for name, r in generated.of(t).items()} for t in (LISTENER, ROUTE, SECRET)}


@pytest.mark.parametrize(
    ("target", "test", "contains"),
    [
        ("*", "shop.example.com", True),
        ("*.example.com", "shop.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("shop.example.com", "*.example.com", False),
        ("shop.example.com", "shop.example.com", True),
        ("*.example.com", "*.other.com", False),
    ],
)
def test_a_wildcard_hostname_contains_the_names_under_it(target: str, test: str, contains: bool) -> None:
    assert hostname_contains(target, test) is contains
    assert hostnames_match(target, test) is (contains or hostname_contains(test, target))


def test_hostnames_sort_most_exact_first() -> None:
    assert sort_hostnames(["*", "*.com", "b.example.com", "*.example.com", "a.example.com"]) == [
        "a.example.com",
        "b.example.com",
        "*.example.com",
        "*.com",
        "*",
    ]


def test_a_secret_must_hold_one_key_and_a_certificate() -> None:
    data = HTTPS_CASE.split("data: ", 1)[1].split("\n", 1)[0]
    import base64

    bundle = base64.b64decode(data)
    kind, chain, key = server_secret(bundle) or ("", b"", b"")
    assert kind == "ecdsa" and chain.startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE KEY" in key
    cert_only = bundle[bundle.index(b"-----BEGIN CERTIFICATE-----") :]
    assert server_secret(cert_only) is None
    assert server_secret(bundle + bundle[: bundle.index(b"-----BEGIN CERTIFICATE-----")]) is None  # two keys


def test_an_unreadable_certificate_leaves_the_hostname_without_a_filter_chain() -> None:
    text = re.sub(r"data: \S+", "data: " + "bm90IGEgY2VydGlmaWNhdGU=", HTTPS_CASE)  # "not a certificate"
    out = resources(text)
    assert out[SECRET] == {}
    assert out[LISTENER] == {} and out[ROUTE] == {}


def test_the_certificate_is_served_to_the_gateway_only() -> None:
    views = proxy_views(build_mesh_model(snapshot_of_text(HTTPS_CASE).resources))
    assert "cert.ecdsa:secret:edge-tls" in generate_checked(views["default.edge-1"]).of(SECRET)
    for node in ("default.shop-1", "default.www-1"):
        assert not any(name.startswith("cert.") for name in generate_checked(views[node]).of(SECRET))


NO_ROUTES = """\
# proxy: default.edge-1
type: Mesh
name: default
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: default
name: edge-1
networking:
  address: 192.168.0.1
  gateway:
    type: BUILTIN
    tags: {kuma.io/service: edge}
---
type: MeshGateway
mesh: default
name: edge
selectors:
  - match: {kuma.io/service: edge}
conf:
  listeners:
    - port: 8080
      protocol: HTTP
      hostname: "*.example.test"
    - port: 9000
      protocol: TCP
"""


def test_a_listener_without_routes_answers_404_and_a_tcp_one_is_not_opened() -> None:
    out = resources(NO_ROUTES)
    assert sorted(out[LISTENER]) == ["edge:HTTP:8080"]
    (config,) = out[ROUTE].values()
    (host,) = config["virtualHosts"]
    assert host["domains"] == ["*.example.test"]
    (route,) = host["routes"]
    assert route["directResponse"]["status"] == 404


def test_a_dataplane_no_meshgateway_selects_gets_no_listeners() -> None:
    text = NO_ROUTES.replace("match: {kuma.io/service: edge}", "match: {kuma.io/service: other}")
    out = resources(text)
    assert out[LISTENER] == {} and out[ROUTE] == {}
