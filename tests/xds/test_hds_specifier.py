"""The HDS specifier against Kuma v2.14.3's generator cases (pkg/hds/tracker/testdata/hds.*.golden.yaml),
Kuma's reading of Envoy's health reports, and what a report does to the mesh model."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import health_check_pb2
from envoy.service.health.v3 import hds_pb2
from google.protobuf.json_format import MessageToDict

from reconciler.controlplane.health import report_of
from reconciler.mesh.health import HealthReport, health_aware, spec_with_health, with_health
from reconciler.mesh.model import build_mesh_model, dataplane_from_resource
from reconciler.xds.hds_specifier import CheckDefaults, HdsSettings, specifier
from tests.support import snapshot_of_text

# The settings of Kuma's generator test: report every 8 s; checks every 1 s, 2 s without traffic,
# 3 s timeout, 4 to be healthy, 5 to be unhealthy.
KUMA_TEST_SETTINGS = HdsSettings(interval=8.0, check_defaults=CheckDefaults(3.0, 1.0, 2.0, 4, 5))

BACKEND = """\
type: Dataplane
mesh: default
name: dp-1
networking:
  address: 10.20.0.1
  inbound:
    - port: 9000
      serviceAddress: {service_address}
      servicePort: 80
      serviceProbe:
{probe}
      tags:
        kuma.io/service: backend
{extra}"""
TPROXY = "  transparentProxying:\n    redirectPortInbound: 15006\n    redirectPortOutbound: 15001\n"


def _dataplane(service_address: str = "192.168.0.1", probe: str = "tcp: {}", extra: str = "") -> Any:
    text = BACKEND.format(service_address=service_address, probe="".join(f"        {line}\n" for line in probe.splitlines()), extra=extra)
    (resource,) = [r for r in snapshot_of_text(text).resources if r.type == "Dataplane"]
    return resource


def _admin_check(address: dict[str, Any], cluster: str = "kuma:envoy:admin") -> dict[str, Any]:
    return {
        "clusterName": cluster,
        "healthChecks": [
            {
                "healthyThreshold": 4,
                "httpHealthCheck": {"path": "/ready"},
                "interval": "1s",
                "noTrafficInterval": "2s",
                "timeout": "3s",
                "unhealthyThreshold": 5,
            }
        ],
        "localityEndpoints": [{"endpoints": [{"address": address}]}],
    }


def _workload_check(address: str = "192.168.0.1", interval: str = "1s", timeout: str = "3s", bind: str | None = None) -> dict[str, Any]:
    check: dict[str, Any] = {
        "clusterName": "localhost:80",
        "healthChecks": [
            {
                "healthyThreshold": 4,
                "interval": interval,
                "noTrafficInterval": "2s",
                "tcpHealthCheck": {},
                "timeout": timeout,
                "unhealthyThreshold": 5,
            }
        ],
        "localityEndpoints": [{"endpoints": [{"address": {"socketAddress": {"address": address, "portValue": 80}}}]}],
    }
    if bind is not None:
        check["upstreamBindConfig"] = {"sourceAddress": {"address": bind, "portValue": 0}}
    return check


ADMIN_9901 = {"socketAddress": {"address": "127.0.0.1", "portValue": 9901}}


def _as_kuma_yaml(message: hds_pb2.HealthCheckSpecifier) -> dict[str, Any]:
    """The JSON form Kuma's goldens hold (protojson drops a zero port; the goldens keep it)."""
    out = MessageToDict(message)
    for check in out["clusterHealthChecks"]:
        source = check.get("upstreamBindConfig", {}).get("sourceAddress")
        if source is not None:
            source.setdefault("portValue", 0)
    return out


@pytest.mark.parametrize(
    ("case", "resource_args", "options", "expected"),
    [
        ("hds.1: a probed inbound", {}, {}, [_admin_check(ADMIN_9901), _workload_check()]),
        (
            "hds.2: transparent proxying binds 127.0.0.6",
            {"extra": TPROXY},
            {},
            [_admin_check(ADMIN_9901), _workload_check(bind="127.0.0.6")],
        ),
        (
            "hds.3: a loopback workload needs no bind",
            {"service_address": "127.0.0.1", "extra": TPROXY},
            {},
            [_admin_check(ADMIN_9901), _workload_check("127.0.0.1")],
        ),
        (
            "hds.4: unified naming",
            {},
            {"unified_naming": True},
            [_admin_check(ADMIN_9901, "system_envoy_admin"), _workload_check()],
        ),
        ("hds.5: only interval set", {"probe": "interval: 10s\ntcp: {}"}, {}, [_admin_check(ADMIN_9901), _workload_check(interval="10s")]),
        ("hds.6: only timeout set", {"probe": "timeout: 15s\ntcp: {}"}, {}, [_admin_check(ADMIN_9901), _workload_check(timeout="15s")]),
        (
            "hds.7: admin on a Unix socket",
            {},
            {"admin_socket": "/tmp/kuma-dp-1234/kuma-envoy-admin.sock"},
            [_admin_check({"pipe": {"path": "/tmp/kuma-dp-1234/kuma-envoy-admin.sock"}}), _workload_check()],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_specifier_matches_kumas_generator(case: str, resource_args: dict[str, str], options: dict[str, Any], expected: list[Any]) -> None:
    resource = _dataplane(**resource_args)
    got = specifier(dataplane_from_resource(resource), resource.spec, KUMA_TEST_SETTINGS, **options)
    assert _as_kuma_yaml(got) == {"clusterHealthChecks": expected, "interval": "8s"}, case


def test_kuma_defaults_and_every_probe_field() -> None:
    resource = _dataplane(probe="interval: 2s\ntimeout: 500ms\nhealthyThreshold: 3\nunhealthyThreshold: 7\ntcp: {}")
    got = MessageToDict(specifier(dataplane_from_resource(resource), resource.spec, HdsSettings(), admin_port=19001))
    admin, workload = got["clusterHealthChecks"]
    # kuma-cp's dpServer.hds defaults: report every 5 s, checks 1 s apart, 2 s timeout, thresholds 1.
    assert got["interval"] == "5s"
    assert admin["healthChecks"][0] | {"httpHealthCheck": None} == {
        "timeout": "2s",
        "interval": "1s",
        "noTrafficInterval": "1s",
        "healthyThreshold": 1,
        "unhealthyThreshold": 1,
        "httpHealthCheck": None,
    }
    assert admin["localityEndpoints"][0]["endpoints"][0]["address"]["socketAddress"]["portValue"] == 19001
    assert workload["healthChecks"][0] == {
        "timeout": "0.500s",
        "interval": "2s",
        "noTrafficInterval": "1s",
        "healthyThreshold": 3,
        "unhealthyThreshold": 7,
        "tcpHealthCheck": {},
    }


def test_inbounds_without_probe_get_only_envoys_own_check() -> None:
    text = "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  address: 127.0.0.1\n  inbound:\n    - port: 8080\n      tags:\n        kuma.io/service: web\n"
    (resource,) = [r for r in snapshot_of_text(text).resources if r.type == "Dataplane"]
    got = specifier(dataplane_from_resource(resource), resource.spec, HdsSettings())
    assert [c.cluster_name for c in got.cluster_health_checks] == ["kuma:envoy:admin"]


def _response(*clusters: tuple[str, int]) -> hds_pb2.EndpointHealthResponse:
    response = hds_pb2.EndpointHealthResponse()
    for name, status in clusters:
        cluster = response.cluster_endpoints_health.add(cluster_name=name)
        cluster.locality_endpoints_health.add().endpoints_health.add(health_status=status)
    return response


def test_reports_read_as_kuma_reads_them() -> None:
    h = health_check_pb2
    report = report_of(_response(("kuma:envoy:admin", h.HEALTHY), ("localhost:80", h.UNHEALTHY), ("localhost:81", h.UNKNOWN)))
    assert report == HealthReport({80: False, 81: True}, envoy=True)
    assert report_of(_response(("kuma:envoy:admin", h.UNHEALTHY), ("localhost:80", h.HEALTHY))) == HealthReport({80: True}, envoy=False)
    # A cluster without endpoints says nothing; a name that is no local cluster is ignored.
    empty = hds_pb2.EndpointHealthResponse()
    empty.cluster_endpoints_health.add(cluster_name="localhost:80")
    assert report_of(empty) == HealthReport({}, envoy=True)
    assert report_of(_response(("something", h.UNHEALTHY))) == HealthReport({}, envoy=True)


TWO_BACKENDS = """\
type: Dataplane
mesh: default
name: a
networking:
  address: 10.0.0.1
  inbound:
    - port: 9000
      servicePort: 80
      tags:
        kuma.io/service: backend
    - port: 9001
      servicePort: 81
      tags:
        kuma.io/service: admin
---
type: Dataplane
mesh: default
name: b
networking:
  address: 10.0.0.2
  inbound:
    - port: 9000
      servicePort: 80
      tags:
        kuma.io/service: backend
"""


def _endpoints(health: dict[str, HealthReport]) -> dict[str, list[str]]:
    resources = snapshot_of_text(TWO_BACKENDS).resources
    model = build_mesh_model(resources, (), health_aware(lambda r, reg: dataplane_from_resource(r, registered=reg), health))
    return {name: [e.dataplane for e in s.endpoints] for (_, name), s in model.services.items()}


def test_an_unhealthy_inbound_is_no_endpoint_until_it_is_healthy_again() -> None:
    assert _endpoints({}) == {"admin": ["a"], "backend": ["a", "b"]}
    assert _endpoints({"default.a": HealthReport({80: False})}) == {"admin": ["a"], "backend": ["b"]}
    assert _endpoints({"default.a": HealthReport({80: True})}) == {"admin": ["a"], "backend": ["a", "b"]}
    # Envoy itself not ready (draining): every inbound of that proxy goes.
    assert _endpoints({"default.a": HealthReport({80: True}, envoy=False)}) == {"admin": [], "backend": ["b"]}


def test_a_report_never_makes_a_declared_not_ready_inbound_ready() -> None:
    text = TWO_BACKENDS.replace("servicePort: 81\n", "servicePort: 81\n      state: NotReady\n")
    (a, _) = [r for r in snapshot_of_text(text).resources if r.type == "Dataplane"]
    dp = with_health(dataplane_from_resource(a), HealthReport({80: True, 81: True}))
    assert [i.ready for i in dp.inbounds] == [True, False]
    spec = spec_with_health(a.spec, HealthReport({80: False}))
    assert [(i["state"], i["health"]) for i in spec["networking"]["inbound"]] == [
        ("NotReady", {"ready": False}),
        ("NotReady", {"ready": False}),
    ]
    unchanged = dataplane_from_resource(a)
    assert with_health(unchanged, HealthReport()) is unchanged
