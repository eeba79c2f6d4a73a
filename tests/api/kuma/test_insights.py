"""Kuma's rules for a dataplane's state and a service's status (pkg/insights), on resources and
proxy states built here: connected with every inbound ready is online, with some not ready
partially degraded, with none ready offline; a gateway is online while connected; a service is
online when all its dataplanes are, and Exclusive MeshServices leave only delegated gateways."""

from __future__ import annotations

from typing import Any

from reconciler.api.kuma.catalog import catalog_of
from reconciler.api.kuma.insights import dp_state, mesh_insight_json, service_stats
from reconciler.mesh.model import build_mesh_model
from reconciler.model import Resource, Snapshot
from reconciler.store import Applied, ProxyStatus, Store


def _dp(name: str, *inbounds: dict[str, Any], gateway: dict[str, Any] | None = None) -> Resource:
    networking: dict[str, Any] = {"address": "127.0.0.1"}
    if gateway is not None:
        networking["gateway"] = gateway
    else:
        networking["inbound"] = list(inbounds)
    return Resource.create("Dataplane", name, {"networking": networking}, mesh="default", flat=True)


def _inbound(port: int, service: str = "web", **extra: Any) -> dict[str, Any]:
    return {"port": port, "servicePort": port + 1, "tags": {"kuma.io/service": service}, **extra}


def _connected(name: str) -> ProxyStatus:
    return ProxyStatus(f"default.{name}", connected=True, connected_at=1.0)


def test_a_dataplane_state_follows_its_proxy_and_its_inbounds() -> None:
    two = _dp("two", _inbound(1), _inbound(3, state="NotReady"))
    assert dp_state(two, _connected("two")) == "partiallyDegraded"
    assert dp_state(two, None) == "offline"
    none_ready = _dp("none", _inbound(1, state="NotReady"), _inbound(3, health={"ready": False}))
    assert dp_state(none_ready, _connected("none")) == "offline"
    assert dp_state(_dp("ok", _inbound(1), _inbound(3, state="Ignored")), _connected("ok")) == "online"
    gateway = _dp("gw", gateway={"type": "BUILTIN", "tags": {"kuma.io/service": "edge"}})
    assert dp_state(gateway, _connected("gw")) == "online"
    assert dp_state(gateway, ProxyStatus("default.gw", connected=False, connected_at=1.0)) == "offline"


def _store(mesh_spec: dict[str, Any], *resources: Resource, connected: tuple[str, ...] = ()) -> Store:
    mesh = Resource.create("Mesh", "default", mesh_spec, flat=True)
    everything = (mesh, *resources)
    store = Store("main")
    store.apply(Applied("a", Snapshot("a", everything), build_mesh_model(everything), 100.0))
    for name in connected:
        store.proxies[f"default.{name}"] = _connected(name)
    return store


def test_a_service_is_online_only_when_all_its_dataplanes_are() -> None:
    resources = (
        _dp("web-1", _inbound(1)),
        _dp("web-2", _inbound(1)),
        _dp("api-1", _inbound(1, "api")),
        _dp("db-1", _inbound(1, "db")),
        _dp("edge", gateway={"tags": {"kuma.io/service": "edge"}}),
    )
    store = _store({"mtls": {"enabledBackend": "ca-1"}}, *resources, connected=("web-1", "api-1", "edge"))
    stats = service_stats(store, catalog_of(store), "default")
    assert {name: (s.service_type, s.status) for name, s in stats.items()} == {
        "web": ("internal", "partially_degraded"),
        "api": ("internal", "online"),
        "db": ("internal", "offline"),
        "edge": ("gateway_delegated", "online"),
    }
    assert stats["web"].issued_backends == {"ca-1": 1}
    insight = mesh_insight_json(store, catalog_of(store), "default")
    assert insight["dataplanes"] == {"total": 5, "online": 3, "offline": 2, "partiallyDegraded": 0}
    assert (
        insight["dataplanesByType"]["gateway"]
        == insight["dataplanesByType"]["gatewayDelegated"]
        == {
            "total": 1,
            "online": 1,
            "offline": 0,
            "partiallyDegraded": 0,
        }
    )
    assert insight["services"] == {"total": 4, "internal": 4, "external": 0}
    assert insight["mTLS"]["issuedBackends"] == {"ca-1": {"total": 3, "online": 3, "offline": 0, "partiallyDegraded": 0}}
    assert insight["policies"] == {"MeshCircuitBreaker": {"total": 1}, "MeshRetry": {"total": 1}, "MeshTimeout": {"total": 2}}


def test_exclusive_mesh_services_leave_only_delegated_gateways() -> None:
    resources = (
        _dp("web-1", _inbound(1)),
        _dp("builtin", gateway={"type": "BUILTIN", "tags": {"kuma.io/service": "edge"}}),
        _dp("delegated", gateway={"tags": {"kuma.io/service": "kong"}}),
    )
    store = _store({"meshServices": {"mode": "Exclusive"}}, *resources)
    assert set(service_stats(store, catalog_of(store), "default")) == {"kong"}
    assert "services" not in mesh_insight_json(store, catalog_of(store), "default")
