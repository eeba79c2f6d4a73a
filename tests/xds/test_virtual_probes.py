"""Kuma's virtual probes listener against Kuma v2.14.3's probe generator cases
(pkg/xds/generator/testdata/probe/*.golden.yaml), through the one render path."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.mesh.model import build_mesh_model
from reconciler.render import render
from reconciler.xds.generate.probes import PROBE_LISTENER
from reconciler.xds.resources import LISTENER
from tests.support import snapshot_of_text

DATAPLANE = """\
type: Dataplane
mesh: default
name: web
networking:
  address: 127.0.0.1
  inbound:
    - port: {inbound}
      tags:
        kuma.io/service: web
{rest}"""
PROBES = """\
probes:
  port: 9000
  endpoints:
    - inboundPort: 8080
      inboundPath: /healthz/probe{query}
      path: /8080/healthz/probe{query}
"""
GET_ONLY = [{"name": ":method", "stringMatch": {"exact": "GET"}}]


def _listeners(inbound: int, rest: str) -> dict[str, Any]:
    model = build_mesh_model(snapshot_of_text(DATAPLANE.format(inbound=inbound, rest=rest)).resources)
    resources = render(model).resources["default.web"]
    return {name: r.to_dict() for name, r in resources.of(LISTENER).items()}


def _probe_hcm(listener: dict[str, Any]) -> dict[str, Any]:
    (chain,) = listener["filterChains"]
    (hcm,) = chain["filters"]
    return hcm["typedConfig"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("query", ["", "?param1=value1&param2=value2"], ids=["01 base probes", "04 probes with queries"])
def test_a_probe_goes_to_the_inbounds_local_cluster_at_its_path(query: str) -> None:
    listener = _listeners(8080, PROBES.format(query=query))[PROBE_LISTENER]
    assert listener["address"] == {"socketAddress": {"address": "127.0.0.1", "portValue": 9000}}
    assert listener["trafficDirection"] == "INBOUND"
    hcm = _probe_hcm(listener)
    assert hcm["statPrefix"] == "probe_listener"
    assert [f["name"] for f in hcm["httpFilters"]] == ["envoy.filters.http.router"]
    assert hcm["internalAddressConfig"]["cidrRanges"] == [
        {"addressPrefix": "127.0.0.1", "prefixLen": 32},
        {"addressPrefix": "::1", "prefixLen": 128},
    ]
    route_config = hcm["routeConfig"]
    assert route_config["name"] == "probe:route_configuration"
    (vhost,) = route_config["virtualHosts"]
    assert (vhost["name"], vhost["domains"]) == ("probe", ["*"])
    # The query is no part of the match or the rewrite: Kuma uses the URL's path.
    assert vhost["routes"] == [
        {
            "match": {"path": "/8080/healthz/probe", "headers": GET_ONLY},
            "route": {"cluster": "localhost:8080", "regexRewrite": {"pattern": {"regex": ".*"}, "substitution": "/healthz/probe"}},
        }
    ]


def test_no_inbound_for_the_probe_redirects_to_its_port() -> None:
    listener = _listeners(1010, PROBES.format(query=""))[PROBE_LISTENER]
    (vhost,) = _probe_hcm(listener)["routeConfig"]["virtualHosts"]
    assert vhost["routes"] == [
        {
            "match": {"path": "/8080/healthz/probe", "headers": GET_ONLY},
            "redirect": {"pathRedirect": "/healthz/probe", "portRedirect": 8080},
        }
    ]


def test_no_probes_no_listener() -> None:
    assert PROBE_LISTENER not in _listeners(8080, "")


def test_transparent_proxying_leaves_the_binding_to_the_redirection() -> None:
    tproxy = "  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n"
    listener = _listeners(8080, tproxy + PROBES.format(query=""))[PROBE_LISTENER]
    assert listener["bindToPort"] is False
