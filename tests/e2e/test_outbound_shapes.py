"""Kuma's outbound shape and the compact one, side by side on real Envoys.

`web-kuma` and `web-compact` call the same services; a label forces each one's shape, and
the control plane runs with `--compact-outbounds 3`, so `web-auto` (no label, three
outbounds) is compact by the threshold. Services are reached straight at their workloads
(their Dataplanes point the inbound at the workload's port), so only the callers run Envoy.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.mesh.shape import SHAPE_LABEL
from tests.e2e.harness import (
    ConfigRemote,
    ControlPlaneProcess,
    EnvoyProcess,
    Workload,
    free_port,
    http_get,
    route_configs,
    wait_settled,
    wait_until,
)
from tests.e2e.tcp import EchoServer
from tests.gitops.serving import run_cli
from tests.support import dataplane_yaml

pytestmark = [pytest.mark.envoy, pytest.mark.both_shapes]

MESH = "type: Mesh\nname: default\n"
CALLERS = ("web-kuma", "web-compact", "web-auto")

ROUTE_TO_OTHER = """\
type: MeshHTTPRoute
name: backend-detour
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
            - path: {type: PathPrefix, value: /detour}
          default:
            backendRefs:
              - {kind: MeshService, name: other}
"""


@dataclass
class World:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    backend: Workload
    other: Workload
    extra: Workload
    echo: EchoServer
    ports: dict[str, int]
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def outbounds(self, caller: str, *, extra: bool = False) -> dict[str, int]:
        p = self.ports
        out = {"backend": p[f"{caller}:backend"], "other": p[f"{caller}:other"], "db": p[f"{caller}:db"]}
        if extra:
            out["extra"] = p[f"{caller}:extra"]
        return out

    def files(self, *, extra: bool = False, route: bool = False) -> dict[str, str | None]:
        p = self.ports
        labels = {"web-kuma": {SHAPE_LABEL: "kuma"}, "web-compact": {SHAPE_LABEL: "compact"}, "web-auto": None}
        out: dict[str, str | None] = {
            "mesh.yaml": MESH,
            "backend.yaml": dataplane_yaml("backend-1", "backend", self.backend.port, self.backend.port),
            "other.yaml": dataplane_yaml("other-1", "other", self.other.port, self.other.port),
            "extra.yaml": dataplane_yaml("extra-1", "extra", self.extra.port, self.extra.port),
            "db.yaml": dataplane_yaml("db-1", "db", self.echo.port, self.echo.port, protocol="tcp"),
            "route.yaml": ROUTE_TO_OTHER if route else None,
        }
        for caller in CALLERS:
            out[f"{caller}.yaml"] = dataplane_yaml(
                caller, caller, p[f"{caller}:in"], free_port(), self.outbounds(caller, extra=extra), labels=labels[caller]
            )
        return out

    def apply(self, **kwargs: bool) -> str:
        sha = self.remote.push(self.files(**kwargs), "change")
        self.cp.wait_applied(sha, [f"default.{c}" for c in CALLERS], timeout=30)
        wait_settled(self.envoys.values())
        return sha

    def get(self, caller: str, service: str, path: str = "/") -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.ports[f'{caller}:{service}']}{path}")

    def listeners(self, caller: str) -> dict[str, dict[str, Any]]:
        out = {}
        for config in self.envoys[caller].config_dump()["configs"]:
            for item in config.get("dynamic_listeners", []):
                out[item["name"]] = item["active_state"]["listener"]
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("shapes")
    remote = ConfigRemote(root)
    ports = {f"{c}:{k}": free_port() for c in CALLERS for k in ("in", "backend", "other", "db", "extra")}
    echo = EchoServer()
    with Workload("backend") as backend, Workload("other") as other, Workload("extra") as extra:
        w = World(
            remote, ControlPlaneProcess(remote.bare, root / "state", extra=["--compact-outbounds", "3"]), backend, other, extra, echo, ports
        )
        first = remote.push(w.files(), "initial")
        w.cp.start()
        try:
            for caller in CALLERS:
                w.envoys[caller] = EnvoyProcess(w.cp, root / "envoys", name=caller)
                w.envoys[caller].start()
            w.cp.wait_applied(first, [f"default.{c}" for c in CALLERS], timeout=30)
            yield w
        finally:
            for e in w.envoys.values():
                e.stop()
            w.cp.stop()
            echo.close()


def _tcp_echo(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def test_kuma_shape_has_a_listener_per_outbound_and_compact_one_listener_with_a_chain_each(world: World) -> None:
    world.apply()
    kuma = world.listeners("web-kuma")
    p = world.ports
    assert {n for n in kuma if n.startswith("outbound")} == {f"outbound:127.0.0.1:{p[f'web-kuma:{s}']}" for s in ("backend", "other", "db")}
    for caller in ("web-compact", "web-auto"):
        listeners = world.listeners(caller)
        assert {n for n in listeners if n.startswith("outbound")} == {"outbounds"}
        compact = listeners["outbounds"]
        addresses = [compact["address"]] + [a["address"] for a in compact.get("additional_addresses", [])]
        ports = {a["socket_address"]["port_value"] for a in addresses}
        assert ports == {p[f"{caller}:{s}"] for s in ("backend", "other", "db")}
        chains = {c["name"]: c["filter_chain_match"] for c in compact["filter_chains"]}
        assert chains == {
            f"outbound:127.0.0.1:{p[f'{caller}:{s}']}": {
                "destination_port": p[f"{caller}:{s}"],
                "prefix_ranges": [{"address_prefix": "127.0.0.1", "prefix_len": 32}],
            }
            for s in ("backend", "other", "db")
        }


@pytest.mark.parametrize("caller", CALLERS)
def test_each_outbound_reaches_its_own_service_in_either_shape(world: World, caller: str) -> None:
    world.apply()
    assert world.get(caller, "backend", "/a") == (200, "backend\n")
    assert world.get(caller, "other", "/b") == (200, "other\n")
    assert _tcp_echo(world.ports[f"{caller}:db"], b"ping over tcp") == b"ping over tcp"
    # Stats keep Kuma's per-outbound prefixes whatever the shape.
    stats = world.envoys[caller].stats("http.backend.downstream_rq_completed")
    assert stats.get("http.backend.downstream_rq_completed", 0) >= 1


def test_a_route_on_one_outbound_changes_that_outbound_only(world: World) -> None:
    world.apply(route=True)
    try:
        for caller in CALLERS:
            assert world.get(caller, "backend", "/detour/x") == (200, "other\n"), caller
            assert world.get(caller, "backend", "/plain") == (200, "backend\n"), caller
            # The other outbound has no such rule: /detour stays with its own service.
            assert world.get(caller, "other", "/detour/x") == (200, "other\n"), caller
        tables = route_configs(world.envoys["web-compact"].config_dump())
        # The /detour prefix is Kuma's pair of routes (`path: /detour`, `prefix: /detour/`), then `/`.
        assert len(tables["outbound:backend"]["virtual_hosts"][0]["routes"]) == 3
        assert len(tables["outbound:other"]["virtual_hosts"][0]["routes"]) == 1
    finally:
        world.apply()


def test_adding_and_removing_an_outbound_keeps_the_others_serving(world: World) -> None:
    world.apply()
    world.apply(extra=True)
    try:
        for caller in CALLERS:
            assert wait_until(lambda c=caller: world.get(c, "extra") == (200, "extra\n"), 10, what=f"{caller} reaches the new outbound")
            assert world.get(caller, "backend") == (200, "backend\n")
        status = world.cp.status() or {}
        for caller in CALLERS:
            assert not any("nack" in t for t in status["proxies"][f"default.{caller}"]["types"].values()), status["proxies"][
                f"default.{caller}"
            ]
    finally:
        world.apply()
    for caller in CALLERS:
        with pytest.raises(OSError):
            world.get(caller, "extra")
        assert world.get(caller, "other") == (200, "other\n")


def test_the_api_and_inspect_say_which_shape_each_proxy_has_and_why(world: World, tmp_path: Path) -> None:
    world.apply()
    shapes = {dp["name"]: dp["outboundShape"] for dp in world.cp.get("/status/dataplanes") if dp["name"] in CALLERS}
    assert shapes == {
        "web-kuma": {"shape": "kuma", "reason": f"label {SHAPE_LABEL}: kuma"},
        "web-compact": {"shape": "compact", "reason": f"label {SHAPE_LABEL}: compact"},
        "web-auto": {"shape": "compact", "reason": "3 outbounds, at least --compact-outbounds 3"},
    }
    code, out = run_cli("inspect", "dataplane", "--repo", str(world.remote.bare), "--compact-outbounds", "3", "default", "web-auto")
    assert code == 0, out
    assert "outbound shape: compact (3 outbounds, at least --compact-outbounds 3)" in out.splitlines()
    code, out = run_cli(
        "inspect", "dataplane", "--repo", str(world.remote.bare), "default", "web-auto", env={"RECONCILER_COMPACT_OUTBOUNDS": None}
    )
    assert code == 0, out
    assert "outbound shape: kuma (the default)" in out.splitlines()
